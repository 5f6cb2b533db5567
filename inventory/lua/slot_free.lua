--[[
slot_free: end a hold or a sale exactly once, its place going to *cooling* rather than
straight back on open sale (waitlist first, handoff defence; docs/waitlist.md). A cooling
place is held by the system until ARGV[6]; then the waitlist filler gives it to the first
waiting order that fits (slot_transfer) or puts it back on sale (slot_uncool), which the
script refuses while an order waits on the unit. Checks and outcomes as slot_release.
KEYS[1] hold hash
KEYS[2] slot hash
KEYS[3] person-day hash of (resource, day)
KEYS[4] the shard's deadline zset
KEYS[5] the shard's outbox stream
KEYS[6] the shard's cooling zset (piece id -> cooling ends, ms)
KEYS[7] the shard's cooling pieces hash (piece id ->
        "slot|<slot id>|<person>|<freed ms>|<reason>|<epoch marker when freed>")
KEYS[8] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] hold_id
ARGV[3] account_id that must own the hold, or '' for the system (sweeper, staff)
ARGV[4] new state: 'cancelled' or 'expired'
ARGV[5] reason (free text for the event)
ARGV[6] cooling ends (ms): now for "offer to the waitlist, else back on sale", later for
        the handoff delay of a cancellation
ARGV[7] the epoch the caller expects in the marker ('' = unguarded: tests and tools only)
Returns:
  {0, state, slot_id, person, piece}  ended now; piece = the cooling piece ('' if the
                                      slot is gone or already full)
  {1, state, slot_id, person, ''}     already ended (nothing changed)
  {-1} no such hold   {-6} not the caller's   {-7} not releasable this way
  {-11} expiry asked before the deadline   {-12} sales closed; checked first
]]
local hold_key, slot_key, pday_key, deadlines_key, outbox_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
local new_state = ARGV[4]
if ARGV[7] ~= '' and redis.call('GET', KEYS[8]) ~= ARGV[7] then
  return {-12}
end
-- include: slot_release_decision

redis.call('HSET', hold_key, 'state', new_state, 'ended', ARGV[1])
local piece = ''
if redis.call('EXISTS', slot_key) == 1 then
  local s = redis.call('HMGET', slot_key, 'available', 'capacity', 'cooling')
  local cooling = tonumber(s[3] or '0')
  -- Never above capacity, counting places in cooling (defence in depth).
  if tonumber(s[1]) + cooling < tonumber(s[2]) then
    piece = ARGV[2]
    redis.call('HINCRBY', slot_key, 'cooling', 1)
    redis.call('ZADD', KEYS[6], ARGV[6], piece)
    redis.call('HSET', KEYS[7], piece,
      'slot|' .. h[3] .. '|' .. h[4] .. '|' .. ARGV[1] .. '|' .. new_state .. '|'
      .. (redis.call('GET', KEYS[8]) or ''))
  end
end
if redis.call('HGET', pday_key, h[4]) == ARGV[2] then
  redis.call('HDEL', pday_key, h[4])
end
redis.call('ZREM', deadlines_key, ARGV[2])
redis.call('XADD', outbox_key, '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', new_state, 'hold', ARGV[2], 'slot', h[3],
  'account', h[1], 'person', h[4], 'at', ARGV[1], 'held', h[6], 'deadline', h[5],
  'idem', h[7], 'confirmed', h[8] or '', 'reason', ARGV[5]}, '\31'))
return {0, new_state, h[3], h[4], piece}
