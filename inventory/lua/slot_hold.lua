--[[
slot_hold: hold one place of a slot for a person, with a payment deadline.
The hold id is derived in Python from (account, idempotency key), so a retry of the same
request names the same hold key: its existence *is* the idempotency record.
Checks every rule before its first write (Lua has no rollback).
KEYS[1] slot hash
KEYS[2] hold hash (named by the hold id)
KEYS[3] person-day hash of (resource, day): person -> live hold id
KEYS[4] the shard's deadline zset (hold id -> deadline ms)
KEYS[5] the shard's outbox stream
KEYS[6] the shard's epoch marker (written by a rebuild from Postgres)
ARGV[1] now_ms
ARGV[2] hold_id
ARGV[3] account_id
ARGV[4] person key (keyed HMAC of the person's ID number)
ARGV[5] deadline_ms
ARGV[6] slot_id
ARGV[7] idempotency key as the client sent it (kept for audit)
ARGV[8] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns:
  {0, deadline_ms}           held
  {1, deadline_ms, state}    replay of an earlier call with the same idempotency key
  {-1} no such slot   {-2} not released yet   {-3} sold out   {-4} person already booked
  {-9} slot closed or over   {-10} idempotency key reused for another request
  {-12} sales closed: the marker is missing or not the expected epoch (Redis lost data,
        or a rebuild runs); checked first, even before a replay
]]
local slot_key, hold_key, pday_key, deadlines_key, outbox_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
if ARGV[8] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[8] then
  return {-12}
end

-- A retry (lost reply, client retry, redis-py retry) must return the first answer.
local previous = redis.call('HMGET', hold_key, 'slot', 'account', 'deadline', 'state')
if previous[1] then
  if previous[1] ~= ARGV[6] or previous[2] ~= ARGV[3] then
    return {-10}
  end
  return {1, tonumber(previous[3]), previous[4]}
end

local slot = redis.call('HMGET', slot_key, 'available', 'release', 'status', 'ends')
if not slot[1] then
  return {-1}
end
if slot[3] ~= 'open' or now >= tonumber(slot[4]) then
  return {-9}
end
if now < tonumber(slot[2]) then
  return {-2}
end
if tonumber(slot[1]) <= 0 then
  return {-3}
end
if redis.call('HEXISTS', pday_key, ARGV[4]) == 1 then
  return {-4}
end

-- Every rule passed: write.
redis.call('HINCRBY', slot_key, 'available', -1)
redis.call('HSET', hold_key,
  'slot', ARGV[6], 'account', ARGV[3], 'person', ARGV[4], 'state', 'held',
  'held', ARGV[1], 'deadline', ARGV[5], 'idem', ARGV[7])
redis.call('HSET', pday_key, ARGV[4], ARGV[2])
-- Live keys live as long as their slot; Postgres keeps the history.
local retain = redis.call('PEXPIRETIME', slot_key)
if retain > 0 then
  redis.call('PEXPIREAT', hold_key, retain)
  redis.call('PEXPIREAT', pday_key, retain)
end
redis.call('ZADD', deadlines_key, ARGV[5], ARGV[2])
redis.call('XADD', outbox_key, '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'held', 'hold', ARGV[2], 'slot', ARGV[6],
  'account', ARGV[3], 'person', ARGV[4], 'at', ARGV[1], 'held', ARGV[1], 'deadline', ARGV[5],
  'idem', ARGV[7]}, '\31'))
return {0, tonumber(ARGV[5])}
