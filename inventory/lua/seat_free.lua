--[[
seat_free: as seat_release (cancel, expire, change, release_one; same checks, same state changes, same outbox events), except that the freed seat-segments are not put back on open sale: each freed seat becomes a *cooling piece*, still sold in the seat patterns but owned by the system until ARGV[7]. The waitlist filler then gives pieces to waiting orders (seat_transfer) or frees them (seat_uncool, refused while an order waits on the run and class). abort_change frees nothing and stays with seat_release.
KEYS[1] meta       hash    nseg, run, cls
KEYS[2] seats      hash    ordinal -> "<pattern>|<tail>" (read only: the hold's seats must be sold as recorded)
KEYS[3] pax        hash    passenger -> live hold id on this run
KEYS[4] hold       hash    the hold (inventory/hold_record.py)
KEYS[5] deadlines  zset    the shard's expiry index
KEYS[6] outbox     stream  gets a `cancelled`, `expired` or `released` (reason changed) event
KEYS[7] cooling    zset    the shard's cooling pieces: piece id -> cooling ends (ms)
KEYS[8] pieces     hash    piece id -> "seat|<run>|<cls>|<a>|<b>|<person>|<freed ms>|<reason>|<epoch marker when freed>|<tail>"
KEYS[9] epoch      string  the shard's epoch marker
ARGV[1] now_ms
ARGV[2] hold id
ARGV[3] mode: cancel | expire | change | release_one
ARGV[4] account: the owner, checked by cancel, change and release_one; "" for expire
ARGV[5] keep_ms: lifetime of a cancelled or expired hold's record
ARGV[6] as seat_release: cancel, expire: "1" once a pending change was aborted; change: the new hold id; release_one: the place (1..5)
ARGV[7] cooling ends (ms)
ARGV[8] the epoch the caller expects in the marker ('' = unguarded)
Returns: {code, state, piece ids...}  code 0 = OK, 1 = REPLAY, negative = refusal (inventory/seat_codes.py; -14 sales closed, checked first)
]]

local OK, REPLAY, BAD_REQUEST, HOLD_NOT_FOUND, HOLD_NOT_LIVE = 0, 1, -2, -6, -7
local NOT_DUE, CHANGE_PENDING, CHANGE_ABORTED, CORRUPT, SALES_CLOSED = -9, -10, -11, -13, -14

if ARGV[8] ~= '' and redis.call('GET', KEYS[9]) ~= ARGV[8] then
  return {SALES_CLOSED}
end
local now, hold_id, mode, account, extra = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[6]
-- include: seat_hold_record
local r = redis.call('HMGET', KEYS[4], 'i', 'state', 'changed_to', 'gone')
local f = {string.match(r[1] or '', HOLD_FIXED)} -- the fixed fields, in FIXED order
-- The hold's fields by number, as seat_release_decision reads them: acct, state, a, b,
-- seats, pax, deadline, change_of, changed_to, run, cls.
local h = {f[4], r[2], f[5], f[6], f[7], f[8], f[9], f[10], r[3] or '', f[2], f[3]}
local gone = r[4] or ''
local acct, state, change_of = h[1], h[2], h[8]
if not acct then
  if mode == 'expire' then
    redis.call('ZREM', KEYS[5], hold_id)
  end
  return {HOLD_NOT_FOUND}
end
if (mode == 'cancel' or mode == 'change' or mode == 'release_one') and acct ~= account then
  return {HOLD_NOT_FOUND}
end

-- Decide first; Lua has no rollback. (The same decisions as seat_release.)
local hold_key = KEYS[4]
-- include: seat_release_decision

local meta = redis.call('HMGET', KEYS[1], 'nseg', 'run', 'cls')
if meta[2] ~= h[10] or meta[3] ~= h[11] then
  return {BAD_REQUEST}
end
local nseg = tonumber(meta[1])
local a, b = tonumber(h[3]), tonumber(h[4])
local people = {}
for p in string.gmatch(h[6], '[^,]+') do people[#people + 1] = p end
local tails, ords, places, place = {}, {}, {}, 0
for t in string.gmatch(h[5], '[^;]+') do
  place = place + 1
  if frees(place) then
    tails[#tails + 1], ords[#ords + 1], places[#places + 1] = t, string.sub(t, 1, 5), place
  end
end
local records = redis.call('HMGET', KEYS[2], unpack(ords))
for i, r in ipairs(records) do
  if not r or string.sub(r, nseg + 2) ~= tails[i] or string.find(string.sub(r, a + 1, b), '0', 1, true) then
    return {CORRUPT}
  end
end

-- Writes. The seats stay sold in the patterns: only their owner changes (the system).
local out = {OK, target}
local head = 'seat|' .. h[10] .. '|' .. h[11] .. '|' .. h[3] .. '|' .. h[4] .. '|'
local marker = redis.call('GET', KEYS[9]) or ''
for i, t in ipairs(tails) do
  local piece = hold_id .. '#' .. places[i]
  redis.call('ZADD', KEYS[7], ARGV[7], piece)
  redis.call('HSET', KEYS[8], piece,
    head .. people[places[i]] .. '|' .. ARGV[1] .. '|' .. target .. '|' .. marker .. '|' .. t)
  out[#out + 1] = piece
end
local pax = {}
for _, k in ipairs(places) do pax[#pax + 1] = people[k] end
redis.call('HDEL', KEYS[3], unpack(pax))
if target == 'released_one' then
  redis.call('HSET', KEYS[4], 'gone', (gone == '' and ',' or gone) .. extra .. ',',
    'gone_at:' .. extra, ARGV[1])
  return out
end
redis.call('ZREM', KEYS[5], hold_id)
local changed_to = target == 'changed' and extra or ''
redis.call('HSET', KEYS[4], 'state', target, 'changed_to', changed_to, 'ended', ARGV[1])
redis.call('XADD', KEYS[6], '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', target == 'changed' and 'released' or target, 'hold', hold_id,
  'kind', 'seat', 'run', h[10], 'cls', h[11], 'acct', acct, 'a', h[3], 'b', h[4], 'seats', h[5],
  'pax', h[6], 'reason', target, 'changed_to', changed_to, 'at', ARGV[1]}, '\31'))
if target ~= 'changed' then
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
return out
