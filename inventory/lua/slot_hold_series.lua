--[[
slot_hold_series: hold one place in each of N slots of ONE shard for one person, all or
nothing (a vaccine's dose 1 and dose 2, booked together). The slots of a resource share a
shard, so a series at one site is one atomic call. Every rule of every slot is checked
before the first write (Lua has no rollback); then every hold is written and its `held`
event appended, each event carrying the whole booking plus its `series`.
A vaccine waitlist order's series (issue 5) names a cooling piece: dose 1 then takes that
place, freed and held back for the line (never on open sale in between), instead of an
open one; its holds also carry `waitlist` (the order).
KEYS[3i-2] slot hash of dose i (i = 1..N)
KEYS[3i-1] hold hash of dose i (named by its hold id)
KEYS[3i]   person-day hash of (resource, day) of dose i
KEYS[3N+1] the shard's deadline zset
KEYS[3N+2] the shard's outbox stream
KEYS[3N+3] the shard's cooling zset (piece id -> cooling ends, ms)
KEYS[3N+4] the shard's cooling pieces hash
KEYS[3N+5] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] account_id
ARGV[3] person key (keyed HMAC of the person's ID number)
ARGV[4] deadline_ms (the same for every hold of the series)
ARGV[5] idempotency key as the client sent it
ARGV[6] series id (written on every hold: slot_confirm refuses such holds one by one)
ARGV[7] N (1..8)
ARGV[8 .. 7+3N] per dose i: hold_id, slot_id, the hold it replaces ('' = none: a move
        names the moved dose's old hold, whose person-day entry it may take over)
ARGV[8+3N] the cooling piece dose 1 takes ('' = an open place)
ARGV[9+3N] the waitlist order id ('' = none), written on every hold as `waitlist`
ARGV[10+3N] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns:
  {0, deadline_ms}               every hold written
  {1, deadline_ms, state}        replay: the series exists (state of its first hold)
  {code, i}                      refused because of dose i, nothing written:
  {-1, i} no such slot (or, i = 1, the piece is gone / another slot's / before a rebuild)
  {-2, i} not released   {-3, i} sold out   {-4, i} person already
  booked that resource that day (or two doses on one day)   {-9, i} slot closed or over
  {-10, i} idempotency key reused for another request
  {-12, 0} sales closed (marker missing or not the expected epoch); checked first
]]
local n = tonumber(ARGV[7])
local now = tonumber(ARGV[1])
local deadlines_key, outbox_key = KEYS[3 * n + 1], KEYS[3 * n + 2]
local cooling_key, pieces_key, epoch_key = KEYS[3 * n + 3], KEYS[3 * n + 4], KEYS[3 * n + 5]
local piece, order, expected = ARGV[8 + 3 * n], ARGV[9 + 3 * n], ARGV[10 + 3 * n]
if expected ~= '' and redis.call('GET', epoch_key) ~= expected then
  return {-12, 0}
end

-- A retry names the same hold keys: the first answer again (or a clear refusal).
local first = redis.call('HMGET', KEYS[2], 'series', 'account', 'deadline', 'state')
if first[2] then
  if first[1] ~= ARGV[6] or first[2] ~= ARGV[2] then
    return {-10, 1}
  end
  for i = 2, n do
    local h = redis.call('HMGET', KEYS[3 * i - 1], 'series', 'slot')
    if h[1] ~= ARGV[6] or h[2] ~= ARGV[6 + 3 * i] then
      return {-10, i}
    end
  end
  return {1, tonumber(first[3]), first[4]}
end

if piece ~= '' then
  local detail = redis.call('HGET', pieces_key, piece)
  local slot1 = ARGV[9]
  if not detail or string.sub(detail, 1, 6 + #slot1) ~= 'slot|' .. slot1 .. '|'
    or string.match(detail, '([^|]*)$') ~= (redis.call('GET', epoch_key) or '') then
    return {-1, 1} -- gone, another slot's, or from before a rebuild
  end
end

local seen_pday = {}
local taken = {}
for i = 1, n do
  local slot_key, hold_key, pday_key = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if redis.call('EXISTS', hold_key) == 1 then
    return {-10, i}
  end
  local slot = redis.call('HMGET', slot_key, 'available', 'release', 'status', 'ends')
  if not slot[1] then
    return {-1, i}
  end
  if slot[3] ~= 'open' or now >= tonumber(slot[4]) then
    return {-9, i}
  end
  if now < tonumber(slot[2]) then
    return {-2, i}
  end
  if not (i == 1 and piece ~= '') then -- the piece is dose 1's place
    taken[slot_key] = (taken[slot_key] or 0) + 1
    if tonumber(slot[1]) < taken[slot_key] then
      return {-3, i}
    end
  end
  -- A dose moved to another time of its own day at its site takes over the entry of the
  -- hold it replaces (released once the move is recorded); any other entry refuses.
  local owner = redis.call('HGET', pday_key, ARGV[3])
  local replaces = ARGV[7 + 3 * i]
  if seen_pday[pday_key] or (owner and (replaces == '' or owner ~= replaces)) then
    return {-4, i}
  end
  seen_pday[pday_key] = true
end

-- Every rule of every dose passed: write them all.
for i = 1, n do
  local slot_key, hold_key, pday_key = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local hold_id, slot_id = ARGV[5 + 3 * i], ARGV[6 + 3 * i]
  if i == 1 and piece ~= '' then
    redis.call('ZREM', cooling_key, piece)
    redis.call('HDEL', pieces_key, piece)
    redis.call('HINCRBY', slot_key, 'cooling', -1)
  else
    redis.call('HINCRBY', slot_key, 'available', -1)
  end
  redis.call('HSET', hold_key,
    'slot', slot_id, 'account', ARGV[2], 'person', ARGV[3], 'state', 'held',
    'held', ARGV[1], 'deadline', ARGV[4], 'idem', ARGV[5], 'series', ARGV[6])
  if order ~= '' then
    redis.call('HSET', hold_key, 'waitlist', order)
  end
  redis.call('HSET', pday_key, ARGV[3], hold_id)
  local retain = redis.call('PEXPIRETIME', slot_key)
  if retain > 0 then
    redis.call('PEXPIREAT', hold_key, retain)
    redis.call('PEXPIREAT', pday_key, retain)
  end
  redis.call('ZADD', deadlines_key, ARGV[4], hold_id)
  redis.call('XADD', outbox_key, '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
    'type', 'held', 'hold', hold_id, 'slot', slot_id,
    'account', ARGV[2], 'person', ARGV[3], 'at', ARGV[1], 'held', ARGV[1],
    'deadline', ARGV[4], 'idem', ARGV[5], 'series', ARGV[6]}, '\31'))
end
return {0, tonumber(ARGV[4])}
