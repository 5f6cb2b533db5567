--[[
slot_restore: rebuild one (resource, day) group of slots and their bookings from Postgres.
Run only by the rebuild, while the shard's marker says "rebuilding" (sales closed), so no
other script writes in between. A group is restored in one or more calls of at most ~32
slots and holds each (about 15 us apiece: a call stays well under 1 ms); the first call
also resets the person-day hash.
KEYS[1] person-day hash of (resource, day)
KEYS[2] the shard's deadline zset
KEYS[3] the shard's epoch marker
KEYS[4 .. 3+S] slot hashes (S = ARGV[3])
KEYS[4+S .. 3+S+H] hold hashes (H = ARGV[4])
ARGV[1] the marker value the rebuild set (refuses if another rebuild took over)
ARGV[2] '1': first call of the group (reset the person-day hash), '0': a later call
ARGV[3] S, ARGV[4] H, ARGV[5] retain_until_ms of the person-day hash
then per slot 8 values: capacity, available, release_ms, resource, day, status, ends_ms,
  retain_until_ms
then per hold 11 values: slot, account, person, state, held_ms, deadline_ms,
  confirmed_ms or '', ended_ms or '', idempotency key, retain_until_ms, series id or ''
  (a vaccine series' holds carry it, so slot_confirm and the generic cancel keep refusing
  them one by one after a rebuild)
Returns: {0, S, H} restored   {-12} the marker is not ARGV[1] (nothing written)
]]
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return {-12}
end
local pday_key, deadlines_key = KEYS[1], KEYS[2]
local s_count, h_count = tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[2] == '1' then
  redis.call('DEL', pday_key)
end
local a = 6
for i = 1, s_count do
  local key = KEYS[3 + i]
  redis.call('DEL', key)
  redis.call('HSET', key, 'capacity', ARGV[a], 'available', ARGV[a + 1],
    'release', ARGV[a + 2], 'resource', ARGV[a + 3], 'day', ARGV[a + 4],
    'status', ARGV[a + 5], 'ends', ARGV[a + 6])
  redis.call('PEXPIREAT', key, ARGV[a + 7])
  a = a + 8
end
for i = 1, h_count do
  local key = KEYS[3 + s_count + i]
  local hold_id = string.match(key, ':hold:(.+)$')
  local state = ARGV[a + 3]
  redis.call('DEL', key)
  redis.call('HSET', key, 'slot', ARGV[a], 'account', ARGV[a + 1], 'person', ARGV[a + 2],
    'state', state, 'held', ARGV[a + 4], 'deadline', ARGV[a + 5], 'idem', ARGV[a + 8])
  if ARGV[a + 6] ~= '' then
    redis.call('HSET', key, 'confirmed', ARGV[a + 6])
  end
  if ARGV[a + 7] ~= '' then
    redis.call('HSET', key, 'ended', ARGV[a + 7])
  end
  if ARGV[a + 10] ~= '' then
    redis.call('HSET', key, 'series', ARGV[a + 10])
  end
  redis.call('PEXPIREAT', key, ARGV[a + 9])
  if state == 'held' then
    redis.call('ZADD', deadlines_key, ARGV[a + 5], hold_id)
  else
    redis.call('ZREM', deadlines_key, hold_id)
  end
  if state == 'held' or state == 'confirmed' then
    redis.call('HSET', pday_key, ARGV[a + 2], hold_id)
  end
  a = a + 11
end
if redis.call('EXISTS', pday_key) == 1 then
  redis.call('PEXPIREAT', pday_key, ARGV[5])
end
return {0, s_count, h_count}
