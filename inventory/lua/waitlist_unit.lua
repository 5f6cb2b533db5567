--[[
waitlist_unit: a waitlist order starts or stops waiting on one inventory unit (a train run
and class, or a resource and day). The hash counts the orders waiting (one field each) and
a generation that every change bumps (a repeat changes nothing): the *_uncool scripts refuse to put a freed place back
on open sale while an order waits, unless the caller read the generation before it checked
every waiting order (so an order filed meanwhile is never skipped).
KEYS[1] the unit's waitlist hash
ARGV[1] 'enroll' or 'leave'
ARGV[2] order id
Returns: {changed (1/0), waiting orders, generation}
]]
local field = 'o:' .. ARGV[2]
local changed
if ARGV[1] == 'enroll' then
  changed = redis.call('HSETNX', KEYS[1], field, '1')
else
  changed = redis.call('HDEL', KEYS[1], field)
end
-- Only a change bumps the generation: repeating an enrolment (the filler re-enrols every
-- waiting order now and then, e.g. after a Redis loss) tells a matcher nothing new.
local gen
if changed == 1 then
  gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
else
  gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
end
local waiting = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], 'gen')
return {changed, waiting, gen}
