--[[
seat_restore: rewrite one (run, class) seat map from Postgres, every seat with the pattern its held and confirmed tickets give it (the rebuild after a Redis loss). The derived structures are computed in Python (inventory/seat_engine.py, unit_state) and written as given; only the rebuild runs it, while the shard's marker says "rebuilding" (no other script writes).
KEYS[1] meta    hash    nseg, nseats, fp, run, cls
KEYS[2] seats   hash    ordinal -> "<pattern>|<tail>"
KEYS[3] bypat   zset    "<pattern>|<tail>" (score 0)
KEYS[4] pcount  hash    pattern -> seats with it
KEYS[5] gapidx  zset    "<g0><g1>|<popcount>|<pattern>" (score 0)
KEYS[6] gaps    string  one byte per gap: 0 = none, else 1 + top popcount
KEYS[7] epoch   string  the shard's epoch marker
ARGV[1] the marker value the rebuild set (refuses if another rebuild took over)
ARGV[2] nseg, ARGV[3] map fingerprint, ARGV[4] run id, ARGV[5] seat class
ARGV[6] the gaps string
ARGV[7] P, ARGV[8] G: how many pcount pairs and gapidx members follow
then P pairs (pattern, seats), G gapidx members, then the seat records "<pattern>|<tail>" in ordinal order (the rest)
Returns: {0, seats} restored   {-14} SALES_CLOSED: the marker is not ARGV[1] (nothing written)
]]

local CHUNK = 1000 -- unpack() stays far below Lua's C stack limit
if redis.call('GET', KEYS[7]) ~= ARGV[1] then
  return {-14}
end
for i = 1, 6 do
  redis.call('DEL', KEYS[i])
end
local p, g = tonumber(ARGV[7]), tonumber(ARGV[8])
local a = 9
if p > 0 then redis.call('HSET', KEYS[4], unpack(ARGV, a, a + 2 * p - 1)) end
a = a + 2 * p
local members = {}
for i = a, a + g - 1 do
  members[#members + 1] = 0
  members[#members + 1] = ARGV[i]
end
if g > 0 then redis.call('ZADD', KEYS[5], unpack(members)) end
a = a + g
local nseats = #ARGV - a + 1
for first = a, #ARGV, CHUNK do
  local upto = math.min(first + CHUNK - 1, #ARGV)
  local fields, zs = {}, {}
  for i = first, upto do
    local tail = string.sub(ARGV[i], tonumber(ARGV[2]) + 2)
    fields[#fields + 1] = string.sub(tail, 1, 5)
    fields[#fields + 1] = ARGV[i]
    zs[#zs + 1] = 0
    zs[#zs + 1] = ARGV[i]
  end
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('ZADD', KEYS[3], unpack(zs))
end
redis.call('SET', KEYS[6], ARGV[6])
redis.call('HSET', KEYS[1], 'nseg', ARGV[2], 'nseats', nseats, 'fp', ARGV[3], 'run', ARGV[4],
  'cls', ARGV[5])
return {0, nseats}
