--[[
slot_publish_cool: slot_publish, except that a slot published into a (resource, day) where
waitlist orders wait puts its places in *cooling* (one piece each, cooling until the
release time) instead of on open sale: newly released stock is offered to the waitlist
first (docs/waitlist.md), never before its release time; the filler then gives the pieces
to waiting orders (slot_transfer) or puts them on sale (slot_uncool). Idempotent.
KEYS[1] slot hash
KEYS[2] the unit's waitlist hash (waiting orders and 'gen')
KEYS[3] the shard's cooling zset (piece id -> cooling ends, ms)
KEYS[4] the shard's cooling pieces hash
KEYS[5] the shard's epoch marker
ARGV[1] capacity (integer > 0)
ARGV[2] release_ms: the slot is bookable from this time on
ARGV[3] resource_id
ARGV[4] day (YYYY-MM-DD, local to the provider)
ARGV[5] retain_until_ms: the slot's keys may be dropped after this
ARGV[6] ends_ms: no booking at or after the slot's end
ARGV[7] slot id (names the pieces: "<slot id>~<n>")
ARGV[8] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns: {0, pieces} created (pieces: places put in cooling, 0 if nobody waits);
  {1} it already existed (left untouched); {-12} sales closed (as slot_publish)
]]
if ARGV[8] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[8] then
  return {-12}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1}
end
local capacity = tonumber(ARGV[1])
local waiting = redis.call('HLEN', KEYS[2]) - redis.call('HEXISTS', KEYS[2], 'gen')
local cooled = waiting > 0 and capacity or 0
redis.call('HSET', KEYS[1],
  'capacity', ARGV[1], 'available', capacity - cooled, 'cooling', cooled, 'release', ARGV[2],
  'resource', ARGV[3], 'day', ARGV[4], 'status', 'open', 'ends', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
local marker = redis.call('GET', KEYS[5]) or ''
for i = 1, cooled do
  local piece = ARGV[7] .. '~' .. i
  redis.call('ZADD', KEYS[3], ARGV[2], piece)
  redis.call('HSET', KEYS[4], piece,
    'slot|' .. ARGV[7] .. '|new|' .. ARGV[2] .. '|released|' .. marker)
end
return {0, cooled}
