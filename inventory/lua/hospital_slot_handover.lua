--[[
hospital_slot_handover: end one registration's hold and give its place, in the same slot,
to the next standby patient in ONE atomic call, so the freed place is never on open sale
in between (issue 6, standby backfill). Same checks as slot_release + slot_hold, all
before the first write; `available` is unchanged (one place leaves, one arrives).
KEYS[1] old hold hash
KEYS[2] slot hash
KEYS[3] person-day hash of (resource, day)
KEYS[4] the shard's deadline zset
KEYS[5] the shard's outbox stream
KEYS[6] new hold hash
KEYS[7] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] old hold id
ARGV[3] reason the old one ends ('citizen', 'no_show', ...)
ARGV[4] new hold id
ARGV[5] new account id
ARGV[6] new person key
ARGV[7] new hold's deadline ms
ARGV[8] idempotency key recorded on the new hold
ARGV[9] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns:
  {0, slot_id}          handed over
  {1, state}            the new hold already exists (a retry): nothing changed
  {-1} no such old hold   {-7} old hold not live (already ended)
  {-9} slot closed or over   {-4} the new person already holds this resource this day
  {-12} sales closed (marker missing or not the expected epoch); checked first
]]
local old_key, slot_key, pday_key, deadlines_key, outbox_key, new_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now = tonumber(ARGV[1])
if ARGV[9] ~= '' and redis.call('GET', KEYS[7]) ~= ARGV[9] then
  return {-12}
end
local existing = redis.call('HGET', new_key, 'state')
if existing then
  return {1, existing}
end
local h = redis.call('HMGET', old_key, 'account', 'state', 'slot', 'person', 'deadline',
  'held', 'idem', 'confirmed')
if not h[1] then
  return {-1}
end
if h[2] ~= 'held' and h[2] ~= 'confirmed' then
  return {-7}
end
local slot = redis.call('HMGET', slot_key, 'status', 'ends')
if not slot[1] or slot[1] ~= 'open' or now >= tonumber(slot[2]) then
  return {-9}
end
local holder = redis.call('HGET', pday_key, ARGV[6])
if holder and holder ~= ARGV[2] then
  return {-4}
end

-- The old registration ends (its event carries the whole booking, like slot_release's).
redis.call('HSET', old_key, 'state', 'cancelled', 'ended', ARGV[1])
if redis.call('HGET', pday_key, h[4]) == ARGV[2] then
  redis.call('HDEL', pday_key, h[4])
end
redis.call('ZREM', deadlines_key, ARGV[2])
redis.call('XADD', outbox_key, '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'cancelled', 'hold', ARGV[2], 'slot', h[3],
  'account', h[1], 'person', h[4], 'at', ARGV[1], 'held', h[6], 'deadline', h[5],
  'idem', h[7], 'confirmed', h[8] or '', 'reason', ARGV[3]}, '\31'))
-- The same place is held for the standby patient (like slot_hold's writes).
redis.call('HSET', new_key,
  'slot', h[3], 'account', ARGV[5], 'person', ARGV[6], 'state', 'held',
  'held', ARGV[1], 'deadline', ARGV[7], 'idem', ARGV[8])
redis.call('HSET', pday_key, ARGV[6], ARGV[4])
local retain = redis.call('PEXPIRETIME', slot_key)
if retain > 0 then
  redis.call('PEXPIREAT', new_key, retain)
  redis.call('PEXPIREAT', pday_key, retain)
end
redis.call('ZADD', deadlines_key, ARGV[7], ARGV[4])
redis.call('XADD', outbox_key, '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'held', 'hold', ARGV[4], 'slot', h[3],
  'account', ARGV[5], 'person', ARGV[6], 'at', ARGV[1], 'held', ARGV[1],
  'deadline', ARGV[7], 'idem', ARGV[8]}, '\31'))
return {0, h[3]}
