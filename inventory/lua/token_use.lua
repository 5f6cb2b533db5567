--[[
token_use: spend a queue token's nonce exactly once. The record outlives the token by a
grace period, measured from the caller's now_ms (Redis's own clock is never compared with
the token's expiry), so a token can never be fresh again while it still verifies.
KEYS[1] the nonce's used-token record (in the nonce's shard)
ARGV[1] now_ms
ARGV[2] expires_ms (the token's expiry)
ARGV[3] grace_ms (how long past the expiry the record is kept)
Returns: {0} fresh: spent now   {1} already used   {-1} already expired: not spent
]]
local now = tonumber(ARGV[1])
local expires = tonumber(ARGV[2])
if now >= expires then
  return {-1}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', string.format('%d', expires - now + tonumber(ARGV[3]))) then
  return {0}
end
return {1}
