--[[
slot_publish: put one published slot on sale in the live inventory (idempotent).
KEYS[1] slot hash
KEYS[2] the shard's epoch marker
ARGV[1] capacity (integer > 0)
ARGV[2] release_ms: the slot is bookable from this time on
ARGV[3] resource_id
ARGV[4] day (YYYY-MM-DD, local to the provider)
ARGV[5] retain_until_ms: the slot's keys may be dropped after this (Postgres keeps history)
ARGV[6] ends_ms: no booking at or after the slot's end
ARGV[7] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns: {0} created; {1} it already existed (left untouched: republishing never resets stock)
  {-12} sales closed: a Redis that lost data must not get a slot back at full capacity
        (its bookings are in Postgres); the rebuild puts it on sale instead
]]
if ARGV[7] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[7] then
  return {-12}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1}
end
redis.call('HSET', KEYS[1],
  'capacity', ARGV[1], 'available', ARGV[1], 'release', ARGV[2],
  'resource', ARGV[3], 'day', ARGV[4], 'status', 'open', 'ends', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
return {0}
