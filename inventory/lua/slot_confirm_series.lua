--[[
slot_confirm_series: confirm every hold of a series at once, or none (the citizen booked a
vaccine's dose 1 and dose 2 together: both become appointments, or neither). Idempotent.
KEYS[1 .. N] hold hashes of the series, dose order
KEYS[N+1] the shard's deadline zset
KEYS[N+2] the shard's outbox stream
KEYS[N+3] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] account_id of the caller (must own every hold)
ARGV[3] series id (a hold carrying another series is refused)
ARGV[4] N
ARGV[5] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns:
  {0, confirmed_ms, slot_1, person, held_ms, deadline_ms, idem}   confirmed now
  {1, confirmed_ms, slot_1, person, held_ms, deadline_ms, idem}   every hold already was
  {-1} a hold is missing   {-6} not the caller's (or not of this series)
  {-7} a hold is cancelled or expired   {-8} the deadline passed
  {-12} sales closed (marker missing or not the expected epoch); checked first
]]
local n = tonumber(ARGV[4])
local now = tonumber(ARGV[1])
local deadlines_key, outbox_key = KEYS[n + 1], KEYS[n + 2]
if ARGV[5] ~= '' and redis.call('GET', KEYS[n + 3]) ~= ARGV[5] then
  return {-12}
end
local holds = {}
local confirmed = 0
for i = 1, n do
  local h = redis.call('HMGET', KEYS[i], 'account', 'state', 'slot', 'person', 'held',
    'deadline', 'confirmed', 'idem', 'series')
  if not h[1] then
    return {-1}
  end
  -- A hold restored by a rebuild from Postgres has lost its `series` field: the
  -- caller names it from its own appointments, so only a different series refuses.
  if h[1] ~= ARGV[2] or (h[9] and h[9] ~= ARGV[3]) then
    return {-6}
  end
  if h[2] == 'confirmed' then
    confirmed = confirmed + 1
  elseif h[2] ~= 'held' then
    return {-7}
  elseif now >= tonumber(h[6]) then
    -- The sweeper may not have run yet: a passed deadline is final all the same.
    return {-8}
  end
  holds[i] = h
end
local f = holds[1]
if confirmed == n then
  return {1, tonumber(f[7]), f[3], f[4], tonumber(f[5]), tonumber(f[6]), f[8]}
end
for i = 1, n do
  local h = holds[i]
  if h[2] == 'held' then
    local hold_id = string.match(KEYS[i], ':hold:(.+)$')
    redis.call('HSET', KEYS[i], 'state', 'confirmed', 'confirmed', ARGV[1])
    redis.call('ZREM', deadlines_key, hold_id)
    redis.call('XADD', outbox_key, '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
      'type', 'confirmed', 'hold', hold_id, 'slot', h[3],
      'account', h[1], 'person', h[4], 'at', ARGV[1], 'held', h[5], 'deadline', h[6],
      'idem', h[8], 'confirmed', ARGV[1], 'series', ARGV[3]}, '\31'))
  end
end
return {0, now, f[3], f[4], tonumber(f[5]), tonumber(f[6]), f[8]}
