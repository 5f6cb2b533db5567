--[[
queue_close: close the opening window and return its joiners (idempotent: once closed, no
join becomes a window joiner, so every call returns the same list).
KEYS[1] meta hash   KEYS[2] joins hash
ARGV[1] now_ms
Returns: {0, account, join_id, arrival, joined_ms, account, ...} the window joiners
         {-1} no such sale   {-4} the window has not ended yet
]]
local window_ends = redis.call('HGET', KEYS[1], 'window_ends')
if not window_ends then
  return {-1}
end
if tonumber(ARGV[1]) < tonumber(window_ends) then
  return {-4}
end
redis.call('HSET', KEYS[1], 'closed', 1)
local out = {0}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local jid, arrival, joined, late = string.match(all[i + 1], '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  if late == '0' then
    out[#out + 1] = all[i]
    out[#out + 1] = jid
    out[#out + 1] = tonumber(arrival)
    out[#out + 1] = tonumber(joined)
  end
end
return out
