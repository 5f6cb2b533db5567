--[[
queue_join: an account joins a sale's waiting room; idempotent per account. Before the
window closes a joiner is a window joiner (placed by the draw); after it, a late joiner,
placed first come first served behind the window (late_rank = its rank among late
joiners, position = n_window + late_rank once the draw is done).
KEYS[1] meta hash   KEYS[2] joins hash (account -> "join_id|arrival|joined_ms|late_rank")
KEYS[3] order zset (account -> position)
ARGV[1] now_ms
ARGV[2] account_id
ARGV[3] join_id (the account's public pseudonym in this sale)
Returns: {0|1, arrival, joined_ms, late_rank, position or 0}   0 joined now, 1 joined before
         {-1} no such sale   {-2} the sale is over   {-3} sold out
]]
local m = redis.call('HMGET', KEYS[1], 'window_ends', 'ends', 'closed', 'drawn', 'n_window', 'status', 'retain')
if not m[1] then
  return {-1}
end
local now = tonumber(ARGV[1])
local seen = redis.call('HGET', KEYS[2], ARGV[2])
if seen then
  local _, arrival, joined, late = string.match(seen, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  local pos = redis.call('ZSCORE', KEYS[3], ARGV[2])
  return {1, tonumber(arrival), tonumber(joined), tonumber(late), tonumber(pos or 0)}
end
if now >= tonumber(m[2]) then
  return {-2}
end
if m[6] == 'sold_out' then
  return {-3}
end
local arrival = redis.call('HINCRBY', KEYS[1], 'arrivals', 1)
local late = 0
-- "closed" is set atomically when the draw takes the window's list: a join that lands
-- after it is late even if its caller's clock still reads inside the window.
if m[3] ~= '1' and now < tonumber(m[1]) then
  late = 0
else
  late = redis.call('HINCRBY', KEYS[1], 'late', 1)
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. '|' .. arrival .. '|' .. ARGV[1] .. '|' .. late)
redis.call('PEXPIREAT', KEYS[2], m[7])
local pos = 0
if m[4] == '1' and late > 0 then
  pos = tonumber(m[5]) + late
  redis.call('ZADD', KEYS[3], pos, ARGV[2])
  redis.call('PEXPIREAT', KEYS[3], m[7])
end
return {0, arrival, now, late, pos}
