--[[
slot_release: end a hold or a sale and return its place to the slot, exactly once.
Used for a citizen's cancel, a refund, staff cancelling, and the sweeper's expiry.
KEYS[1] hold hash
KEYS[2] slot hash
KEYS[3] person-day hash of (resource, day)
KEYS[4] the shard's deadline zset
KEYS[5] the shard's outbox stream
KEYS[6] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] hold_id
ARGV[3] account_id that must own the hold, or '' for the system (sweeper, staff)
ARGV[4] new state: 'cancelled' or 'expired'
ARGV[5] reason (free text for the event)
ARGV[6] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns:
  {0, state, slot_id, person}   released now
  {1, state, slot_id, person, ''}   already ended (nothing changed)
  {-1} no such hold   {-6} not the caller's   {-7} not releasable this way
  {-11} expiry asked before the deadline
  {-12} sales closed (marker missing or not the expected epoch); checked first
]]
local hold_key, slot_key, pday_key, deadlines_key, outbox_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
local new_state = ARGV[4]
if ARGV[6] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[6] then
  return {-12}
end
-- include: slot_release_decision

redis.call('HSET', hold_key, 'state', new_state, 'ended', ARGV[1])
if redis.call('EXISTS', slot_key) == 1 then
  local s = redis.call('HMGET', slot_key, 'available', 'capacity')
  -- Never above capacity, whatever happened before (defence in depth).
  if tonumber(s[1]) < tonumber(s[2]) then
    redis.call('HINCRBY', slot_key, 'available', 1)
  end
end
if redis.call('HGET', pday_key, h[4]) == ARGV[2] then
  redis.call('HDEL', pday_key, h[4])
end
redis.call('ZREM', deadlines_key, ARGV[2])
-- Every event carries the whole booking, so the persister never depends on their order.
redis.call('XADD', outbox_key, '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', new_state, 'hold', ARGV[2], 'slot', h[3],
  'account', h[1], 'person', h[4], 'at', ARGV[1], 'held', h[6], 'deadline', h[5],
  'idem', h[7], 'confirmed', h[8] or '', 'reason', ARGV[5]}, '\31'))
return {0, new_state, h[3], h[4]}
