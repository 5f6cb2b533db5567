--[[
queue_finish: the outcome of a hold attempted with a queue token.
  held: the account is done (leaves the admitted set), the stock count drops by places;
  retry: refused by a rule; the admission stays, and the next status call issues a new
         token (the spent one never works again);
  sold_out: the inventory had nothing left: the sale is sold out.
KEYS[1] meta   KEYS[2] admitted zset   KEYS[3] nonces hash   KEYS[4] done set
ARGV[1] now_ms
ARGV[2] account_id
ARGV[3] outcome: held | retry | sold_out
ARGV[4] places (held only)
Returns: {0, sold_out_now}   sold_out_now = 1 when this call turned the sale sold out
         {-1} no such sale
]]
local m = redis.call('HMGET', KEYS[1], 'remaining', 'status', 'retain')
if not m[3] then
  return {-1}
end
local remaining = tonumber(m[1])
redis.call('HDEL', KEYS[3], ARGV[2])
if ARGV[3] ~= 'retry' then
  -- Stock measurements taken before now no longer count (see queue_status).
  redis.call('HSET', KEYS[1], 'counted', ARGV[1])
end
if ARGV[3] == 'held' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  if redis.call('SADD', KEYS[4], ARGV[2]) == 1 then
    redis.call('PEXPIREAT', KEYS[4], m[3])
    redis.call('HINCRBY', KEYS[1], 'served', 1)
    remaining = math.max(0, remaining - tonumber(ARGV[4]))
    redis.call('HSET', KEYS[1], 'remaining', remaining)
  end
elseif ARGV[3] == 'sold_out' then
  remaining = 0
  redis.call('HSET', KEYS[1], 'remaining', 0)
end
if remaining <= 0 and m[2] ~= 'sold_out' then
  redis.call('HSET', KEYS[1], 'status', 'sold_out')
  return {0, 1}
end
return {0, 0}
