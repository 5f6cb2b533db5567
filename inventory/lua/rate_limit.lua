--[[
rate_limit: GCRA (generic cell rate algorithm) for one (scope, subject), e.g. one account,
one passenger (ID HMAC) or one client address. The key holds the theoretical arrival time
(TAT, ms): the moment the subject's budget is fully refilled. With emission interval T and
burst B, a fresh subject may make B calls at once, then one per T.
A refused call writes nothing, so hammering does not push the retry time further out.
KEYS[1] the subject's TAT string (in the subject's shard)
ARGV[1] now_ms
ARGV[2] emission_interval_ms (T > 0: one call per T on average)
ARGV[3] burst (B >= 1: calls allowed at once)
Returns: {1, 0, remaining}                allowed; remaining = calls still allowed now
         {0, retry_after_ms, 0}           refused; the same call is allowed at now + retry_after_ms
]]
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, allow_at - now, 0}
end
-- The key lives until the budget is full again, when "no key" means the same, plus a
-- second: Redis's clock ticks apart from the callers' now_ms, and a key that vanished
-- early would hand out budget early, while one that lingers changes nothing (max above).
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now + 1000))
return {1, 0, math.floor((now - allow_at) / interval)}
