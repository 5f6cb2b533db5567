--[[
slot_transfer: give one place to a waitlist order as a normal hold with a payment deadline:
a cooling place (never on open sale in between), or, with no piece, an open place (stock
released while the order waited). The hold is the same as slot_hold's (same fields, same
`held` event), marked with the order in its field 'waitlist'.
KEYS[1] the shard's cooling zset
KEYS[2] the shard's cooling pieces hash
KEYS[3] slot hash
KEYS[4] hold hash (named by the hold id, derived from the order)
KEYS[5] person-day hash of (resource, day)
KEYS[6] the shard's deadline zset
KEYS[7] the shard's outbox stream
KEYS[8] the shard's epoch marker
ARGV[1] now_ms
ARGV[2] piece id, or '' to take an open place
ARGV[3] hold_id
ARGV[4] account_id
ARGV[5] person key
ARGV[6] deadline_ms
ARGV[7] slot_id
ARGV[8] the waitlist order id (also the hold's idempotency key)
ARGV[9] the epoch the caller expects in the marker ('' = unguarded)
Returns:
  {0, deadline_ms}           held for the order
  {1, deadline_ms, state}    this order's hold exists already (a replay)
  {-1} no such slot or piece (or a piece from before a rebuild)   {-2} not released   {-3} no open place
  {-4} person already booked this resource this day   {-9} slot closed or over
  {-10} the hold id belongs to another request   {-12} sales closed; checked first
]]
local now = tonumber(ARGV[1])
if ARGV[9] ~= '' and redis.call('GET', KEYS[8]) ~= ARGV[9] then
  return {-12}
end
local previous = redis.call('HMGET', KEYS[4], 'slot', 'account', 'deadline', 'state')
if previous[1] then
  if previous[1] ~= ARGV[7] or previous[2] ~= ARGV[4] then
    return {-10}
  end
  return {1, tonumber(previous[3]), previous[4]}
end
local slot = redis.call('HMGET', KEYS[3], 'available', 'release', 'status', 'ends')
if not slot[1] then
  return {-1}
end
local piece = ARGV[2]
if piece ~= '' then
  local detail = redis.call('HGET', KEYS[2], piece)
  if not detail or string.sub(detail, 1, 6 + #ARGV[7]) ~= 'slot|' .. ARGV[7] .. '|'
    or string.match(detail, '([^|]*)$') ~= (redis.call('GET', KEYS[8]) or '') then
    return {-1} -- gone, another slot's, or from before a rebuild
  end
end
if slot[3] ~= 'open' or now >= tonumber(slot[4]) then
  return {-9}
end
if now < tonumber(slot[2]) then
  return {-2} -- the waitlist never jumps a sale opening (new slots cool until release)
end
if piece == '' then
  if tonumber(slot[1]) <= 0 then
    return {-3}
  end
end
if redis.call('HEXISTS', KEYS[5], ARGV[5]) == 1 then
  return {-4}
end

if piece == '' then
  redis.call('HINCRBY', KEYS[3], 'available', -1)
else
  redis.call('ZREM', KEYS[1], piece)
  redis.call('HDEL', KEYS[2], piece)
  redis.call('HINCRBY', KEYS[3], 'cooling', -1)
end
redis.call('HSET', KEYS[4],
  'slot', ARGV[7], 'account', ARGV[4], 'person', ARGV[5], 'state', 'held',
  'held', ARGV[1], 'deadline', ARGV[6], 'idem', ARGV[8], 'waitlist', ARGV[8])
redis.call('HSET', KEYS[5], ARGV[5], ARGV[3])
local retain = redis.call('PEXPIRETIME', KEYS[3])
if retain > 0 then
  redis.call('PEXPIREAT', KEYS[4], retain)
  redis.call('PEXPIREAT', KEYS[5], retain)
end
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[3])
redis.call('XADD', KEYS[7], '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'held', 'hold', ARGV[3], 'slot', ARGV[7],
  'account', ARGV[4], 'person', ARGV[5], 'at', ARGV[1], 'held', ARGV[1], 'deadline', ARGV[6],
  'idem', ARGV[8]}, '\31'))
return {0, tonumber(ARGV[6])}
