--[[
account_hold_reserve: count a new hold against its account's cap of live unpaid holds.
An account's holds span shards, so the cap lives in the account's own shard and is taken
before the hold (and given back if the hold is refused). Idempotent per hold id.
KEYS[1] the account's live-holds zset (member hold id, score deadline ms)
ARGV[1] now_ms
ARGV[2] hold_id
ARGV[3] deadline_ms
ARGV[4] cap
Returns: {0} counted   {1} already counted   {-5} cap reached
]]
local key = KEYS[1]
-- Holds past their deadline no longer count, whether or not the sweeper saw them yet.
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[1])
if redis.call('ZSCORE', key, ARGV[2]) then
  return {1}
end
if redis.call('ZCARD', key) >= tonumber(ARGV[4]) then
  return {-5}
end
redis.call('ZADD', key, ARGV[3], ARGV[2])
redis.call('PEXPIREAT', key, redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
return {0}
