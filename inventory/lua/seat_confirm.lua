--[[
seat_confirm: a live hold becomes a sold ticket (payment received); confirming twice is harmless.
KEYS[1] hold       hash    the hold (inventory/hold_record.py)
KEYS[2] deadlines  zset    the shard's expiry index
KEYS[3] outbox     stream  gets a `confirmed` event
KEYS[4] epoch      string  the shard's epoch marker (written by a rebuild from Postgres)
ARGV[1] now_ms
ARGV[2] hold id
ARGV[3] account: the owner
ARGV[4] change_commit_of: "" normally; for a 改签 hold, its old hold id once the change committed there (the deadline no longer applies: the old seat is already given back)
ARGV[5] the epoch the caller expects in the marker ("" = unguarded: tests and tools only); SALES_CLOSED (-14) if it differs, checked first
Returns: {code, state}  code 0 = OK, 1 = REPLAY (already confirmed), negative = refusal (see inventory/seat_codes.py)
]]

local OK, REPLAY, BAD_REQUEST, HOLD_NOT_FOUND, HOLD_NOT_LIVE, HOLD_EXPIRED, CHANGE_PENDING = 0, 1, -2, -6, -7, -8, -10

-- After a Redis loss the hold may be an older copy's: sell nothing until a rebuild.
if ARGV[5] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[5] then
  return {-14} -- SALES_CLOSED
end

-- include: seat_hold_record
local r = redis.call('HMGET', KEYS[1], 'i', 'state')
local _, run, cls, acct, a, b, seats, pax, deadline, change_of = string.match(r[1] or '', HOLD_FIXED)
if not acct or acct ~= ARGV[3] then
  return {HOLD_NOT_FOUND}
end
if r[2] == 'confirmed' then
  return {REPLAY, 'confirmed'}
end
if r[2] ~= 'held' then
  return {HOLD_NOT_LIVE, r[2]}
end
-- A 改签 hold is confirmed by its change only, after the old ticket committed.
if change_of ~= ARGV[4] then
  return {ARGV[4] == '' and CHANGE_PENDING or BAD_REQUEST}
end
if ARGV[4] == '' and tonumber(ARGV[1]) >= tonumber(deadline) then
  return {HOLD_EXPIRED}
end

redis.call('HSET', KEYS[1], 'state', 'confirmed', 'confirmed', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'confirmed', 'hold', ARGV[2], 'kind', 'seat', 'run', run,
  'cls', cls, 'acct', acct, 'a', a, 'b', b, 'seats', seats, 'pax', pax, 'change_of', change_of,
  'at', ARGV[1]}, '\31'))
return {OK, 'confirmed'}
