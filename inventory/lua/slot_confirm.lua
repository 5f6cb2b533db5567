--[[
slot_confirm: turn a live hold into a sale (the citizen paid). Idempotent.
KEYS[1] hold hash
KEYS[2] the shard's deadline zset
KEYS[3] the shard's outbox stream
KEYS[4] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] hold_id
ARGV[3] account_id of the caller (must own the hold)
ARGV[4] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns:
  {0, slot_id, person, held_ms, deadline_ms, confirmed_ms, idempotency_key}   confirmed now
  {1, slot_id, person, held_ms, deadline_ms, confirmed_ms, idempotency_key}   already was
  {-1} no such hold   {-6} not the caller's   {-7} cancelled or expired   {-8} deadline
  passed   {-14, series_id} a hold of a series (confirmed only by slot_confirm_series)
  {-12} sales closed (marker missing or not the expected epoch); checked first
]]
local hold_key, deadlines_key, outbox_key = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[4] then
  return {-12}
end
local h = redis.call('HMGET', hold_key, 'account', 'state', 'slot', 'person', 'held',
  'deadline', 'confirmed', 'idem')
if not h[1] then
  return {-1}
end
if h[1] ~= ARGV[3] then
  return {-6}
end
if h[2] == 'confirmed' then
  return {1, h[3], h[4], tonumber(h[5]), tonumber(h[6]), tonumber(h[7]), h[8]}
end
if h[2] ~= 'held' then
  return {-7}
end
-- A hold of a series (vaccine dose 1 + dose 2) is confirmed only with the rest of its
-- series, by slot_confirm_series: confirming one dose alone would break "both or neither".
local series = redis.call('HGET', hold_key, 'series')
if series then
  return {-14, series}
end
-- The sweeper may not have run yet: a passed deadline is final all the same.
if now >= tonumber(h[6]) then
  return {-8}
end
redis.call('HSET', hold_key, 'state', 'confirmed', 'confirmed', ARGV[1])
redis.call('ZREM', deadlines_key, ARGV[2])
redis.call('XADD', outbox_key, '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'confirmed', 'hold', ARGV[2], 'slot', h[3],
  'account', h[1], 'person', h[4], 'at', ARGV[1], 'held', h[5], 'deadline', h[6],
  'idem', h[8], 'confirmed', ARGV[1]}, '\31'))
return {0, h[3], h[4], tonumber(h[5]), tonumber(h[6]), now, h[8]}
