--[[
seat_restore_holds: rewrite seat hold records of one run from Postgres, with the run's passenger index and the shard's deadlines (the rebuild after a Redis loss). Only the rebuild runs it, while the shard's marker says "rebuilding". A run's holds come in calls of a few dozen; the first call also empties the passenger index.
KEYS[1] pax        hash    passenger -> live hold id on this run
KEYS[2] deadlines  zset    the shard's expiry index
KEYS[3] epoch      string  the shard's epoch marker
KEYS[4..3+H] the hold hashes
ARGV[1] the marker value the rebuild set (refuses if another rebuild took over)
ARGV[2] '1': first call of the run (empty the passenger index first), '0': a later call
ARGV[3] H
then per hold: F (number of field/value pairs), expire_at_ms or '', deadline_ms or '' (a held hold: its deadline is indexed), the live passengers ","-joined, then F field/value pairs
Returns: {0, H} restored   {-14} SALES_CLOSED: the marker is not ARGV[1] (nothing written)
]]

if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return {-14}
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
end
local a = 4
for i = 1, tonumber(ARGV[3]) do
  local key = KEYS[3 + i]
  local hold_id = string.match(key, ':hold:(.+)$')
  local f, expire_at, deadline, live = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(ARGV, a + 4, a + 3 + 2 * f))
  if expire_at ~= '' then
    redis.call('PEXPIREAT', key, expire_at)
  end
  if deadline ~= '' then
    redis.call('ZADD', KEYS[2], deadline, hold_id)
  else
    redis.call('ZREM', KEYS[2], hold_id)
  end
  for person in string.gmatch(live, '[^,]+') do
    redis.call('HSET', KEYS[1], person, hold_id)
  end
  a = a + 4 + 2 * f
end
return {0, tonumber(ARGV[3])}
