--[[
person_lock: a short mutex on one person (by ID HMAC), so a check that reads the person's
bookings in Postgres and the hold that depends on it run one request at a time per person
(e.g. "no overlapping trips": trips live on many runs, in many shards).
KEYS[1] lock   string   the person's lock, in the person's own shard
ARGV[1] mode: take | give
ARGV[2] owner: the request's hold id (a retry of the same request takes its own lock again)
ARGV[3] ttl_ms (take): how long the lock outlives a crashed owner
Returns: {0} taken (or given back)   {1} busy: another owner has it (take) / not ours (give)
]]
local current = redis.call('GET', KEYS[1])
if ARGV[1] == 'take' then
  if current and current ~= ARGV[2] then
    return {1}
  end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return {0}
end
if current == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return {0}
end
return {1}
