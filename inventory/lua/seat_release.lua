--[[
seat_release: return a hold's segments to inventory, exactly once: cancel (owner), expire (sweeper, past the deadline) or change (改签 commit at the old ticket); abort_change records that a pending change will never commit; release_one (owner) returns one passenger's seat of a confirmed party (a per-ticket refund), the others keep theirs.
KEYS[1] meta       hash    (as seat_hold: KEYS[1..7] are the run-class inventory and the run's passenger index)
KEYS[2] seats      hash
KEYS[3] bypat      zset
KEYS[4] pcount     hash
KEYS[5] gapidx     zset
KEYS[6] gaps       string
KEYS[7] pax        hash
KEYS[8] hold       hash    the hold (inventory/hold_record.py)
KEYS[9]  deadlines zset    the shard's expiry index
KEYS[10] outbox    stream  gets a `cancelled`, `expired` or `released` (reason changed) event
KEYS[11] epoch     string  the shard's epoch marker (written by a rebuild from Postgres)
ARGV[1] now_ms
ARGV[2] hold id
ARGV[3] mode: cancel | expire | change | abort_change | release_one
ARGV[4] account: the owner, checked by cancel, change and release_one; "" for expire and abort_change (the sweeper)
ARGV[5] keep_ms: lifetime of a cancelled or expired hold's record
ARGV[6] cancel, expire: "1" once the hold's pending change was aborted at its old ticket, else ""; change, abort_change: the new hold id; release_one: the passenger's place in the hold (1..5)
ARGV[7] run id, ARGV[8] seat class: the unit the keys name, which must be the hold's (BAD_REQUEST otherwise)
ARGV[9] the epoch the caller expects in the marker ("" = unguarded: tests and tools only); SALES_CLOSED (-14) if it differs, checked first
Returns: {code, state}  code 0 = OK (the new state; release_one: 'released_one'), 1 = REPLAY (nothing to do: the state is final already, or the change decision stands, or that passenger's seat is back already), negative = refusal (see inventory/seat_codes.py)
A released passenger's place is kept in the hold's field `gone` (",2,"), and when in `gone_at:<place>`: the hold's seats and pax lists keep every place (ticket n stays the n-th passenger), and every later release skips the places gone. release_one appends no outbox event: its caller records the ticket (refunded) in Postgres before answering; a retry is a REPLAY. It never releases a party's last live seat (BAD_REQUEST: cancel the hold instead).
]]

local OK, REPLAY, BAD_REQUEST, HOLD_NOT_FOUND, HOLD_NOT_LIVE = 0, 1, -2, -6, -7
local NOT_DUE, CHANGE_PENDING, CHANGE_ABORTED, CORRUPT = -9, -10, -11, -13

-- After a Redis loss the hold may be an older copy's: change nothing until a rebuild.
if ARGV[9] ~= '' and redis.call('GET', KEYS[11]) ~= ARGV[9] then
  return {-14} -- SALES_CLOSED
end

local now, hold_id, mode, account, extra = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[6]
-- include: seat_hold_record
local r = redis.call('HMGET', KEYS[8], 'i', 'state', 'changed_to', 'gone')
local f = {string.match(r[1] or '', HOLD_FIXED)} -- the fixed fields, in FIXED order
-- The hold's fields by number, as seat_release_decision reads them: acct, state, a, b,
-- seats, pax, deadline, change_of, changed_to, run, cls.
local h = {f[4], r[2], f[5], f[6], f[7], f[8], f[9], f[10], r[3] or '', f[2], f[3]}
local gone = r[4] or ''
local acct, state, change_of = h[1], h[2], h[8]
if not acct then
  if mode == 'expire' then
    redis.call('ZREM', KEYS[9], hold_id) -- a deadline left by a hold that is gone
  end
  return {HOLD_NOT_FOUND}
end
if (mode == 'cancel' or mode == 'change' or mode == 'release_one') and acct ~= account then
  return {HOLD_NOT_FOUND}
end

-- abort_change: record that a pending change will never commit; the first decision at
-- the old ticket stands (a change that committed is not aborted).
if mode == 'abort_change' and extra ~= '' then
  if state == 'changed' and h[9] == extra then return {REPLAY, 'changed'} end
  if redis.call('HEXISTS', KEYS[8], 'abort:' .. extra) == 1 then return {REPLAY, 'aborted'} end
  redis.call('HSET', KEYS[8], 'abort:' .. extra, ARGV[1])
  return {OK, 'aborted'}
end

-- Decide first; Lua has no rollback.
local hold_key = KEYS[8]
-- include: seat_release_decision

-- The keys must be the hold's own unit (the caller names them from ARGV's unit), and
-- each seat sold on [a, b) exactly as the hold says; otherwise nothing is written.
if ARGV[7] ~= h[10] or ARGV[8] ~= h[11] then
  return {BAD_REQUEST}
end
local a, b = tonumber(h[3]), tonumber(h[4])
local tails, ords, place = {}, {}, 0
for t in string.gmatch(h[5], '[^;]+') do
  place = place + 1
  if frees(place) then
    tails[#tails + 1], ords[#ords + 1] = t, string.sub(t, 1, 5)
  end
end
local records = redis.call('HMGET', KEYS[2], unpack(ords))
-- A record is "<pattern>|<tail>": its pattern's length is the run's nseg (meta not read).
local nseg = records[1] and string.find(records[1], '|', 1, true) - 1
local groups, order = {}, {}
for i, r in ipairs(records) do
  if not r or string.sub(r, nseg + 2) ~= tails[i] or string.find(string.sub(r, a + 1, b), '0', 1, true) then
    return {CORRUPT}
  end
  local p = string.sub(r, 1, nseg)
  if not groups[p] then
    groups[p] = {}
    order[#order + 1] = p
  end
  table.insert(groups[p], tails[i])
end

-- include: seat_map

local freed = string.rep('0', b - a)
for _, p in ipairs(order) do
  shift(p, string.sub(p, 1, a) .. freed .. string.sub(p, b + 1), groups[p])
end
flush_gaps()

local pax = {}
place = 0
for p in string.gmatch(h[6], '[^,]+') do
  place = place + 1
  if frees(place) then pax[#pax + 1] = p end
end
redis.call('HDEL', KEYS[7], unpack(pax)) -- a live hold's passengers point to it alone
if target == 'released_one' then
  redis.call('HSET', KEYS[8], 'gone', (gone == '' and ',' or gone) .. extra .. ',',
    'gone_at:' .. extra, ARGV[1])
  return {OK, target}
end
redis.call('ZREM', KEYS[9], hold_id)
local changed_to = target == 'changed' and extra or ''
redis.call('HSET', KEYS[8], 'state', target, 'changed_to', changed_to, 'ended', ARGV[1])
redis.call('XADD', KEYS[10], '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', target == 'changed' and 'released' or target, 'hold', hold_id,
  'kind', 'seat', 'run', h[10], 'cls', h[11], 'acct', acct, 'a', h[3], 'b', h[4], 'seats', h[5],
  'pax', h[6], 'reason', target, 'changed_to', changed_to, 'at', ARGV[1]}, '\31'))
-- A changed ticket's record is the commit of its change: kept, so a sweeper can always read it.
if target ~= 'changed' then
  redis.call('PEXPIRE', KEYS[8], ARGV[5])
end
return {OK, target}
