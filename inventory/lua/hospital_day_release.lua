--[[
hospital_day_release: a registration no longer counts in its patient's day gate
(cancelled, refused by the inventory, session cancelled).
KEYS[1] the person-day gate hash: department id -> "<hold id>|<until ms>"
ARGV[1] department id
ARGV[2] hold id (only this hold's entry is removed)
Returns: {0} released   {1} was not counted (or counted for another hold)
]]
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value and string.sub(value, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. '|' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {0}
end
return {1}
