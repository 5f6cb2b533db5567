--[[
seat_transfer: give cooling seat pieces (seat_free) to a waitlist order as a normal seat hold with a payment deadline, one piece per passenger, in one call: the seats never pass through open sale. A piece serves a trip [a, b) inside its own segments; what is left of it on either side stays a cooling piece (same cooling end). The seat patterns do not change (the segments stay sold); only owners do. The hold is the one seat_hold writes (same fields, same `held` event), marked with the order in its field 'waitlist'.
KEYS[1] meta       hash    nseg, run, cls of the unit
KEYS[2] pax        hash    passenger -> live hold id on this run (one ticket per person per run)
KEYS[3] hold       hash    the new hold (inventory/hold_record.py; its id derives from the order: a retry names it again)
KEYS[4] deadlines  zset    the shard's expiry index
KEYS[5] outbox     stream  gets a `held` event
KEYS[6] cooling    zset    the shard's cooling pieces: piece id -> cooling ends (ms)
KEYS[7] pieces     hash    piece id -> "seat|<run>|<cls>|<a>|<b>|<person>|<freed ms>|<reason>|<epoch marker when freed>|<tail>"
KEYS[8] epoch      string  the shard's epoch marker
ARGV[1] now_ms
ARGV[2] hold id
ARGV[3] account id
ARGV[4] a: first segment of the trip
ARGV[5] b: first segment not travelled
ARGV[6] deadline_ms
ARGV[7] request fingerprint (a retry must carry the same)
ARGV[8] the waitlist order id
ARGV[9..] piece id, passenger, piece id, passenger, ... (1 to 5 pairs)
ARGV[#ARGV] (last) the epoch the caller expects in the marker ('' = unguarded)
Returns: {code, hold id, deadline_ms, wish_met (always 0), tail...}  code 0 = OK, 1 = REPLAY (the order's hold exists), -2 = bad request, -3 = a piece is gone, does not cover the trip or is from before a rebuild, -4 = a passenger already has a ticket on this run (adds the passenger), -5 = the hold id was used by another request, -14 = sales closed (checked first)
]]

local OK, REPLAY, BAD_REQUEST, NO_SEAT, PERSON_LIMIT, IDEM_MISMATCH, SALES_CLOSED = 0, 1, -2, -3, -4, -5, -14

local expected = ARGV[#ARGV]
if expected ~= '' and redis.call('GET', KEYS[8]) ~= expected then
  return {SALES_CLOSED}
end
local now, hold_id, a, b, deadline = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
-- include: seat_hold_record
local prior = redis.call('HGET', KEYS[3], 'i')
if prior then
  local _, _, _, _, _, _, p_seats, _, p_deadline, _, p_fp = string.match(prior, HOLD_FIXED)
  if p_fp ~= ARGV[7] then return {IDEM_MISMATCH} end
  local out = {REPLAY, hold_id, p_deadline, '0'}
  for t in string.gmatch(p_seats, '[^;]+') do out[#out + 1] = t end
  return out
end
local meta = redis.call('HMGET', KEYS[1], 'nseg', 'run', 'cls')
local n = (#ARGV - 9) / 2
if not meta[1] or not (now and a and b and tonumber(deadline)) or n < 1 or n > 5 or n % 1 ~= 0
  or a < 0 or a >= b or b > tonumber(meta[1]) or tonumber(deadline) <= now then
  return {BAD_REQUEST}
end

-- Every check before the first write.
local pieces, pax, seen = {}, {}, {}
local marker = redis.call('GET', KEYS[8]) or ''
for i = 1, n do
  local id, p = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
  if seen[id] or seen['p:' .. p] or p == '' then return {BAD_REQUEST} end
  seen[id], seen['p:' .. p] = true, true
  local detail = redis.call('HGET', KEYS[7], id)
  local run, cls, pa, pb, rest = string.match(detail or '', '^seat|([^|]*)|([^|]*)|(%d+)|(%d+)|(.*)$')
  if not run or run ~= meta[2] or cls ~= meta[3] or tonumber(pa) > a or tonumber(pb) < b then
    return {NO_SEAT}
  end
  local epoch, tail = string.match(rest, '^[^|]*|[^|]*|[^|]*|([^|]*)|(.*)$')
  if epoch ~= marker then return {NO_SEAT} end
  pieces[i] = {id = id, a = tonumber(pa), b = tonumber(pb), rest = rest, tail = tail,
    until_ms = redis.call('ZSCORE', KEYS[6], id)}
  pax[i] = p
end
local owners = redis.call('HMGET', KEYS[2], unpack(pax))
for i = 1, n do
  if owners[i] then return {PERSON_LIMIT, pax[i]} end
end

-- Writes.
local head = 'seat|' .. meta[2] .. '|' .. meta[3] .. '|'
local taken = {}
for i, pc in ipairs(pieces) do
  redis.call('ZREM', KEYS[6], pc.id)
  redis.call('HDEL', KEYS[7], pc.id)
  -- What the trip does not use stays cooling, as its own piece.
  if pc.a < a then
    redis.call('ZADD', KEYS[6], pc.until_ms, pc.id .. '<')
    redis.call('HSET', KEYS[7], pc.id .. '<', head .. pc.a .. '|' .. a .. '|' .. pc.rest)
  end
  if b < pc.b then
    redis.call('ZADD', KEYS[6], pc.until_ms, pc.id .. '>')
    redis.call('HSET', KEYS[7], pc.id .. '>', head .. b .. '|' .. pc.b .. '|' .. pc.rest)
  end
  taken[i] = pc.tail
end
local seats, people = table.concat(taken, ';'), table.concat(pax, ',')
redis.call('HSET', KEYS[3], 'i', table.concat({'seat', meta[2], meta[3], ARGV[3], ARGV[4], ARGV[5],
  seats, people, deadline, '', ARGV[7], '0'}, '\31'), 'state', 'held', 'waitlist', ARGV[8])
redis.call('ZADD', KEYS[4], deadline, hold_id)
local own = {}
for i, p in ipairs(pax) do own[2 * i - 1], own[2 * i] = p, hold_id end
redis.call('HSET', KEYS[2], unpack(own))
redis.call('XADD', KEYS[5], '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'held', 'hold', hold_id, 'kind', 'seat', 'run', meta[2],
  'cls', meta[3], 'acct', ARGV[3], 'a', ARGV[4], 'b', ARGV[5], 'seats', seats, 'pax', people,
  'deadline', deadline, 'change_of', '', 'at', ARGV[1]}, '\31'))
local out = {OK, hold_id, deadline, '0'}
for _, t in ipairs(taken) do out[#out + 1] = t end
return out
