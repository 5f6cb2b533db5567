--[[
slot_uncool: a cooling place goes back on open sale, only once its cooling ended and only
if no waitlist order waits on its unit (resource, day), unless the caller proves it looked
at every waiting order: it passes the unit's generation it read before looking, and any
filing since then changed it.
KEYS[1] the shard's cooling zset
KEYS[2] the shard's cooling pieces hash
KEYS[3] slot hash
KEYS[4] the unit's waitlist hash (field 'gen', plus one field per waiting order)
KEYS[5] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] piece id
ARGV[3] the unit's generation the caller read before matching, or '' (nobody may wait)
ARGV[4] the epoch the caller expects in the marker ('' = unguarded)
Returns:
  {0}    back on open sale
  {1}    no such piece (already transferred or released): nothing changed
  {2}    a piece from before a rebuild (its epoch is not the marker's): dropped, nothing
         freed (the rebuild counted its place already)
  {-11}  cooling not over   {-13} an order waits on the unit (or one was filed since)
  {-12}  sales closed; checked first
]]
if ARGV[4] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[4] then
  return {-12}
end
local until_ms = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not until_ms then
  return {1}
end
local detail = redis.call('HGET', KEYS[2], ARGV[2]) or ''
if string.match(detail, '([^|]*)$') ~= (redis.call('GET', KEYS[5]) or '') then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
  return {2}
end
if tonumber(ARGV[1]) < tonumber(until_ms) then
  return {-11}
end
local waiting = redis.call('HLEN', KEYS[4]) - redis.call('HEXISTS', KEYS[4], 'gen')
if waiting > 0 and (ARGV[3] == '' or redis.call('HGET', KEYS[4], 'gen') ~= ARGV[3]) then
  return {-13}
end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then
  local s = redis.call('HMGET', KEYS[3], 'available', 'capacity', 'cooling')
  redis.call('HINCRBY', KEYS[3], 'cooling', -1)
  if tonumber(s[1]) + tonumber(s[3] or '1') - 1 < tonumber(s[2]) then
    redis.call('HINCRBY', KEYS[3], 'available', 1)
  end
end
return {0}
