--[[
queue_place: write the draw's positions (in batches); the final batch also places every
late joiner (n_window + late_rank) and marks the sale drawn. Idempotent: positions are a
function of the committed draw, so a repeat writes the same values.
KEYS[1] meta hash   KEYS[2] joins hash   KEYS[3] order zset
ARGV[1] now_ms
ARGV[2] final (1 on the last batch)
ARGV[3] n_window (how many window joiners the draw placed)
ARGV[4..] account, position, account, position, ...
Returns: {0} placed   {1} already drawn (nothing written)   {-1} no such sale
]]
local m = redis.call('HMGET', KEYS[1], 'drawn', 'retain')
if not m[2] then
  return {-1}
end
if m[1] == '1' then
  return {1}
end
for i = 4, #ARGV, 2 do
  redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i])
end
if ARGV[2] == '1' then
  local n = tonumber(ARGV[3])
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    local late = tonumber(string.match(all[i + 1], '|([^|]*)$'))
    if late > 0 then
      redis.call('ZADD', KEYS[3], n + late, all[i])
    end
  end
  redis.call('HSET', KEYS[1], 'drawn', 1, 'n_window', n)
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('PEXPIREAT', KEYS[3], m[2])
end
return {0}
