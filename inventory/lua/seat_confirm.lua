--[[
seat_confirm: a live hold becomes a sold ticket (payment received); confirming twice is harmless.
KEYS[1] hold       hash    the hold
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

local h = redis.call('HMGET', KEYS[1], 'acct', 'state', 'deadline', 'change_of', 'run', 'cls', 'a', 'b',
  'seats', 'pax')
if not h[1] or h[1] ~= ARGV[3] then
  return {HOLD_NOT_FOUND}
end
if h[2] == 'confirmed' then
  return {REPLAY, 'confirmed'}
end
if h[2] ~= 'held' then
  return {HOLD_NOT_LIVE, h[2]}
end
-- A 改签 hold is confirmed by its change only, after the old ticket committed.
if h[4] ~= ARGV[4] then
  return {ARGV[4] == '' and CHANGE_PENDING or BAD_REQUEST}
end
if ARGV[4] == '' and tonumber(ARGV[1]) >= tonumber(h[3]) then
  return {HOLD_EXPIRED}
end

redis.call('HSET', KEYS[1], 'state', 'confirmed', 'confirmed', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'confirmed', 'hold', ARGV[2], 'kind', 'seat', 'run', h[5],
  'cls', h[6], 'acct', h[1], 'a', h[7], 'b', h[8], 'seats', h[9], 'pax', h[10], 'change_of', h[4],
  'at', ARGV[1]}, '\31'))
return {OK, 'confirmed'}
