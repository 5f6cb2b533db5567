--[[
seat_uncool: a cooling seat piece (seat_free) goes back on open sale: its segments are freed in the seat patterns exactly as seat_release frees a hold's. Only once its cooling ended, and only if no waitlist order waits on the run and class, unless the caller passes the unit's generation it read before it checked every waiting order (an order filed since changed it).
KEYS[1] meta       hash    (KEYS[1..6] are the run-class inventory, as seat_hold and seat_release)
KEYS[2] seats      hash
KEYS[3] bypat      zset
KEYS[4] pcount     hash
KEYS[5] gapidx     zset
KEYS[6] gaps       string
KEYS[7] cooling    zset    the shard's cooling pieces: piece id -> cooling ends (ms)
KEYS[8] pieces     hash    piece id -> "seat|<run>|<cls>|<a>|<b>|<person>|<freed ms>|<reason>|<epoch marker when freed>|<tail>"
KEYS[9]  waitlist  hash    the unit's waiting orders (one field each) and generation 'gen'
KEYS[10] epoch     string  the shard's epoch marker
ARGV[1] now_ms
ARGV[2] piece id
ARGV[3] the unit's generation the caller read before matching, or '' (nobody may wait)
ARGV[4] the epoch the caller expects in the marker ('' = unguarded)
Returns: {code}  0 = OK (on sale again), 1 = REPLAY (no such piece: transferred or freed already; or a piece from before a rebuild, dropped: the rebuild freed its seat already), -2 = the piece is not of this unit, -9 = cooling not over, -13 = the seat is not sold as the piece says (nothing written), -14 = sales closed (checked first), -15 = an order waits on the unit (or one was filed since)
]]

local OK, REPLAY, BAD_REQUEST, NOT_DUE, CORRUPT, SALES_CLOSED, WAITING = 0, 1, -2, -9, -13, -14, -15

if ARGV[4] ~= '' and redis.call('GET', KEYS[10]) ~= ARGV[4] then
  return {SALES_CLOSED}
end
local until_ms = redis.call('ZSCORE', KEYS[7], ARGV[2])
if not until_ms then
  return {REPLAY}
end
local detail = redis.call('HGET', KEYS[8], ARGV[2])
local run, cls, pa, pb, epoch, tail = string.match(detail or '', '^seat|([^|]*)|([^|]*)|(%d+)|(%d+)|[^|]*|[^|]*|[^|]*|([^|]*)|(.*)$')
local meta = redis.call('HMGET', KEYS[1], 'nseg', 'run', 'cls')
if not run or meta[2] ~= run or meta[3] ~= cls then
  return {BAD_REQUEST}
end
if epoch ~= (redis.call('GET', KEYS[10]) or '') then
  redis.call('ZREM', KEYS[7], ARGV[2])
  redis.call('HDEL', KEYS[8], ARGV[2])
  return {REPLAY}
end
if tonumber(ARGV[1]) < tonumber(until_ms) then
  return {NOT_DUE}
end
local waiting = redis.call('HLEN', KEYS[9]) - redis.call('HEXISTS', KEYS[9], 'gen')
if waiting > 0 and (ARGV[3] == '' or redis.call('HGET', KEYS[9], 'gen') ~= ARGV[3]) then
  return {WAITING}
end
local nseg = tonumber(meta[1])
local a, b = tonumber(pa), tonumber(pb)
local r = redis.call('HGET', KEYS[2], string.sub(tail, 1, 5))
if not r or string.sub(r, nseg + 2) ~= tail or string.find(string.sub(r, a + 1, b), '0', 1, true) then
  return {CORRUPT}
end
local p = string.sub(r, 1, nseg)

-- include: seat_map

-- Freed [a, b) goes back to the pattern, as in seat_release.
shift(p, string.sub(p, 1, a) .. string.rep('0', b - a) .. string.sub(p, b + 1), {tail})
flush_gaps()
redis.call('ZREM', KEYS[7], ARGV[2])
redis.call('HDEL', KEYS[8], ARGV[2])
return {OK}
