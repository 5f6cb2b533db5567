--[[
seat_load: publish the seat map of one (run, class) with every seat free; re-publishing the same map changes nothing.
KEYS[1] meta    hash    nseg, nseats, fp, run, cls
KEYS[2] seats   hash    ordinal -> "<pattern>|<tail>"
KEYS[3] bypat   zset    "<pattern>|<tail>" (score 0, read by lex: by pattern, then ordinal)
KEYS[4] pcount  hash    pattern -> number of seats with it (and field '~', see inventory/seat_keys.py)
KEYS[5] gapidx  zset    "<g0><g1>|<popcount>|<pattern>" (two digits each, score 0)
KEYS[6] gaps    string  one byte per gap (g0 * (nseg + 1) + g1): 0 = none, else 1 + top popcount
KEYS[7] epoch   string  the shard's epoch marker (written by a rebuild from Postgres)
ARGV[1] nseg (1..63)
ARGV[2] fingerprint of the map (same map, same fingerprint)
ARGV[3] run id
ARGV[4] seat class
ARGV[5..#ARGV-1] seat tails "<ordinal:05d>|<coach>|<row>|<letter>|<kind>", in ordinal order
ARGV[#ARGV] the epoch the caller expects in the marker ("" = unguarded: tests and tools only)
Returns: {code}  code 0 = OK (published), 1 = REPLAY (this map is already published), negative = refusal (see inventory/seat_codes.py); SALES_CLOSED (-14) when the marker differs, checked first: after a Redis loss a map must come back from Postgres (the rebuild), never as "every seat free"
]]

local OK, REPLAY, BAD_REQUEST, MAP_MISMATCH, SALES_CLOSED = 0, 1, -2, -12, -14
local CHUNK = 1000 -- unpack() stays far below Lua's C stack limit

local expected = ARGV[#ARGV]
if expected ~= '' and redis.call('GET', KEYS[7]) ~= expected then
  return {SALES_CLOSED}
end
local last = #ARGV - 1 -- the last tail
local nseg, fp = tonumber(ARGV[1]), ARGV[2]
if not nseg or nseg < 1 or nseg > 63 or last < 5 then
  return {BAD_REQUEST}
end

-- A published map is never reset: that would free sold seats.
local current = redis.call('HGET', KEYS[1], 'fp')
if current then
  return {current == fp and REPLAY or MAP_MISMATCH}
end

local empty = string.rep('0', nseg)
local nseats = last - 4
for first = 5, last, CHUNK do
  local upto = math.min(first + CHUNK - 1, last)
  local fields, members = {}, {}
  for i = first, upto do
    local member = empty .. '|' .. ARGV[i]
    fields[#fields + 1] = string.sub(ARGV[i], 1, 5)
    fields[#fields + 1] = member
    members[#members + 1] = 0
    members[#members + 1] = member
  end
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('ZADD', KEYS[3], unpack(members))
end

-- Every seat is in the one pattern "all free", whose one gap is the whole run.
-- Field '~' keeps pcount a hashtable (O(1) lookups); see inventory/seat_keys.py.
local HASHTABLE = 'keeps this hash a hashtable, for O(1) field lookups (inventory/seat_keys.py)'
redis.call('HSET', KEYS[4], empty, nseats, '~', HASHTABLE)
redis.call('ZADD', KEYS[5], 0, string.format('%02d%02d|00|', 0, nseg) .. empty)
local cells = (nseg + 1) * (nseg + 1)
redis.call('SET', KEYS[6], string.rep('\0', nseg) .. '\1' .. string.rep('\0', cells - nseg - 1))
redis.call('HSET', KEYS[1], 'nseg', nseg, 'nseats', nseats, 'fp', fp, 'run', ARGV[3], 'cls', ARGV[4])
return {OK}
