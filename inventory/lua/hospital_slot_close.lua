--[[
hospital_slot_close: close a slot to new holds (its session was cancelled). Existing holds
are released one by one afterwards with slot_release; slot_hold refuses a non-open slot.
KEYS[1] slot hash
KEYS[2] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] new status ('cancelled')
ARGV[3] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns: {0} closed now   {1} already had that status   {-1} no such slot   {-12} sales closed
]]
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return {-12}
end
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {-1}
end
if status == ARGV[2] then
  return {1}
end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
return {0}
