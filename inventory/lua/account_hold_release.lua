--[[
account_hold_release: a hold no longer counts against its account's cap (confirmed,
cancelled, expired, or refused by its shard).
KEYS[1] the account's live-holds zset
ARGV[1] hold_id
Returns: {0} released   {1} it was not counted
]]
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  return {0}
end
return {1}
