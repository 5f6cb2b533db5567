--[[
seat_hold: hold seats for 1-5 passengers on segments [a, b) of one (run, class), all or nothing, best fit, adjacent when possible.
KEYS[1] meta       hash    nseg, nseats, fp, run, cls (seat_load); not read: gaps gives nseg, ARGV the unit
KEYS[2] seats      hash    ordinal -> "<pattern>|<tail>", tail = "<ordinal:05d>|<coach>|<row>|<letter>|<kind>"
KEYS[3] bypat      zset    "<pattern>|<tail>" (score 0, read by lex: by pattern, then ordinal)
KEYS[4] pcount     hash    pattern -> number of seats with it (patterns present only)
KEYS[5] gapidx     zset    "<g0><g1>|<popcount>|<pattern>" (two digits each, score 0): patterns by free gap
KEYS[6] gaps       string  one byte per gap (g0 * (nseg + 1) + g1): 0 = none, else 1 + top popcount
KEYS[7] pax        hash    passenger -> live hold id on this run (one ticket per person per run)
KEYS[8] hold       hash    the hold (inventory/hold_record.py: `i` packs its fixed fields); also the idempotency record (its id derives from account and key)
KEYS[9]  deadlines zset    hold id -> deadline ms (the shard's expiry index)
KEYS[10] outbox    stream  the shard's outbox: gets a `held` event
KEYS[11] epoch     string  the shard's epoch marker (written by a rebuild from Postgres)
ARGV[1] now_ms
ARGV[2] hold id ("<shard:03d>-<hex>", from the account and the idempotency key)
ARGV[3] account id
ARGV[4] a: first segment (boarding stop)
ARGV[5] b: first segment not travelled (alighting stop)
ARGV[6] wish: "" or a position kind (window, aisle, middle, upper, lower)
ARGV[7] deadline_ms: the payment deadline, > now_ms
ARGV[8] request fingerprint: the same idempotency key with another request is refused
ARGV[9] change_of: the ticket this hold replaces (改签), or ""
ARGV[10] run id, ARGV[11] seat class: the unit the keys name (recorded in the hold and its event)
ARGV[12..#ARGV-1] passenger ids, 1 to 5, distinct, one seat each in this order
ARGV[#ARGV] the epoch the caller expects in the marker ("" = unguarded: tests and tools only); SALES_CLOSED (-14) if it differs, checked first, even before a replay
Returns: {code, hold id, deadline_ms, wish_met (1/0), tail...}  code 0 = OK, 1 = REPLAY (idempotent retry: the first answer), negative = refusal (see inventory/seat_codes.py), PERSON_LIMIT adds the passenger
]]

local OK, REPLAY, NOT_LOADED, BAD_REQUEST, NO_SEAT, PERSON_LIMIT, IDEM_MISMATCH = 0, 1, -1, -2, -3, -4, -5
-- Bounded work per hold, whatever the number of seats (inventory/seat_model.py, plan_seats).
local SAMPLE, MAX_BUCKETS, PATTERNS_PER_GAP = 16, 3, 5

-- After a Redis loss (missing or other epoch marker) sell nothing until a rebuild.
if ARGV[#ARGV] ~= '' and redis.call('GET', KEYS[11]) ~= ARGV[#ARGV] then
  return {-14} -- SALES_CLOSED
end

-- The gap cells are (nseg + 1)² bytes: they tell whether the map is loaded and its nseg,
-- so meta is not read.
local cells = redis.call('GET', KEYS[6])
if not cells then
  return {NOT_LOADED}
end
local nseg = math.sqrt(#cells) - 1
local now, hold_id, account = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local a, b, wish, deadline = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]
local pax = {}
for i = 12, #ARGV - 1 do
  pax[#pax + 1] = ARGV[i]
end
local n = #pax

-- Lua has no rollback: every check comes before the first write. (Inline, not a function:
-- every function a script defines is a new closure on every call.)
local ok = now and a and b and tonumber(deadline) and a % 1 == 0 and b % 1 == 0
  and a >= 0 and a < b and b <= nseg and n >= 1 and n <= 5 and tonumber(deadline) > now
for i = 1, ok and n or 0 do
  local p = pax[i]
  if p == '' then ok = false end
  for j = 1, i - 1 do
    if pax[j] == p then ok = false end
  end
end
if not ok then
  return {BAD_REQUEST}
end

-- include: seat_hold_record

-- A retry of the same request finds its hold and gets the first answer again.
local prior = redis.call('HGET', KEYS[8], 'i')
if prior then
  local _, _, _, _, _, _, p_seats, _, p_deadline, _, p_fp, p_wish_met = string.match(prior, HOLD_FIXED)
  if p_fp ~= ARGV[8] then
    return {IDEM_MISMATCH}
  end
  local out = {REPLAY, hold_id, p_deadline, p_wish_met}
  for t in string.gmatch(p_seats, '[^;]+') do
    out[#out + 1] = t
  end
  return out
end

local owners = redis.call('HMGET', KEYS[7], unpack(pax))
for i = 1, n do
  if owners[i] then
    return {PERSON_LIMIT, pax[i]}
  end
end

-- include: seat_map

-- 1. Candidate gaps, a tier at a time: the free gaps (g0 <= a, g1 >= b) some seat has,
-- with t = 2, 1, 0 ends bordering the trip (2: no leftover to fragment); within a tier the
-- busiest pattern first, then the tightest gap, then the lowest start. Most holds stop in
-- tier 2 or 1, so tier 0 (the rest of the triangle) is rarely read.
gaps = cells
local cands
-- Each candidate carries one number that orders it (higher first): busiest pattern, then
-- tightest gap, then lowest start; nseg <= 99, so the fields do not overlap.
local function add(c, v)
  local g0 = (c - 1 - (c - 1) % W) / W
  local g1 = c - 1 - g0 * W
  cands[#cands + 1] = {g0, g1, v - 1, v * 10000 + (99 - g1 + g0) * 100 + 99 - g0}
end
-- Cells from..to of one row: an empty row is one comparison (equal strings are one
-- interned object in Lua), else its non-empty cells are found in C, not a call per cell.
local function scan(from, to, zero)
  local row = string.sub(gaps, from, to)
  if row == zero then return end
  local i = string.find(row, '[^%z]')
  while i do
    add(from + i - 1, string.byte(row, i))
    i = string.find(row, '[^%z]', i + 1)
  end
end
local function tier(t)
  cands = {}
  local zero = string.rep('\0', nseg - b)
  if t == 2 then
    local v = string.byte(gaps, a * W + b + 1)
    if v > 0 then add(a * W + b + 1, v) end
  elseif t == 1 then
    scan(a * W + b + 2, a * W + nseg + 1, zero)
    for c = (a - 1) * W + b + 1, 1, -W do
      local v = string.byte(gaps, c)
      if v > 0 then add(c, v) end
    end
  else
    for g0 = a - 1, 0, -1 do
      scan(g0 * W + b + 2, g0 * W + nseg + 1, zero)
    end
  end
  return cands
end

-- 2. Walk the gaps' patterns, busiest first, sampling each bucket's lowest ordinals;
-- 3. stop at a perfect group, or once MAX_BUCKETS buckets hold enough seats.
local any_seat = n == 1 and wish == ''
local k, per_gap = any_seat and 1 or SAMPLE, any_seat and 1 or PATTERNS_PER_GAP
local buckets, total, best, best_bk, best_s = {}, 0, nil, nil, nil
-- Group score, higher is better: one coach, fewest rows spanned, wish met. Not needed
-- (not even defined) for one passenger without a wish: any first seat is a perfect group.
local score, better
if not any_seat then
  score = function(bk, s)
    local coach, lo, hi, same, met = bk.coach[s], bk.row[s], bk.row[s], 1, wish == ''
    for j = s, s + n - 1 do
      if bk.coach[j] ~= coach then same = 0 end
      if bk.row[j] < lo then lo = bk.row[j] end
      if bk.row[j] > hi then hi = bk.row[j] end
      if bk.kind[j] == wish then met = true end
    end
    return {same, same == 1 and lo - hi or -1000, met and 1 or 0}
  end
  better = function(x, y)
    for i = 1, 3 do
      if x[i] ~= y[i] then return x[i] > y[i] end
    end
    return false
  end
end
local function walk(c)
  local hi, lo = gap_range(c[1], c[2])
  for _, m in ipairs(redis.call('ZRANGE', KEYS[5], hi, lo, 'BYLEX', 'REV', 'LIMIT', 0, per_gap)) do
    local p = string.sub(m, 9)
    local rows = redis.call('ZRANGE', KEYS[3], '[' .. p .. '|', '(' .. p .. '}', 'BYLEX', 'LIMIT', 0, k)
    local bk = {pattern = p, tail = {}}
    if any_seat then -- one passenger, no wish: the first seat is a perfect group
      if rows[1] then
        bk.tail[1] = string.sub(rows[1], nseg + 2)
        best, best_bk, best_s = true, bk, 1
      end
    else
      bk.coach, bk.row, bk.kind = {}, {}, {}
      for i, r in ipairs(rows) do
        local t = string.sub(r, nseg + 2)
        local coach, row, kind = string.match(t, '^%d+|([^|]*)|(%d+)|[^|]*|([^|]*)$')
        bk.tail[i], bk.coach[i], bk.row[i], bk.kind[i] = t, coach, tonumber(row), kind
      end
      for s = 1, #rows - n + 1 do
        local sc = score(bk, s)
        if not best or better(sc, best) then best, best_bk, best_s = sc, bk, s end
      end
    end
    buckets[#buckets + 1] = bk
    total = total + #rows
    if best == true or (best and best[1] == 1 and best[2] == 0 and best[3] == 1)
      or (#buckets >= MAX_BUCKETS and total >= n) then
      return true
    end
  end
  return false
end
-- The candidates best first, picked one at a time rather than sorted: most holds stop at
-- the first, so a full sort (with a Lua comparator) was most of the walk's cost.
for t = 2, 0, -1 do
  local list, done = tier(t), false
  for i = 1, #list do
    local top_i = i
    for j = i + 1, #list do
      if list[j][4] > list[top_i][4] then top_i = j end
    end
    list[i], list[top_i] = list[top_i], list[i]
    done = walk(list[i])
    if done then break end
  end
  if done then break end
end
if total < n then
  return {NO_SEAT}
end

-- The seats taken, per bucket: the best group of one bucket, else the first seats in walk order.
local take = {}
if best_bk then
  local ts = {}
  for j = best_s, best_s + n - 1 do ts[#ts + 1] = best_bk.tail[j] end
  take[1] = {best_bk, ts}
else
  local left = n
  for _, bk in ipairs(buckets) do
    if left == 0 then break end
    local ts = {}
    for j = 1, math.min(#bk.tail, left) do ts[j] = bk.tail[j] end
    left = left - #ts
    take[#take + 1] = {bk, ts}
  end
end

-- Writes from here on.
local taken, met = {}, wish == ''
for _, tk in ipairs(take) do
  local bk, ts = tk[1], tk[2]
  local p = bk.pattern
  local q = string.sub(p, 1, a) .. string.rep('1', b - a) .. string.sub(p, b + 1)
  shift(p, q, ts)
  for _, t in ipairs(ts) do
    taken[#taken + 1] = t
    if not met and string.match(t, '|([^|]*)$') == wish then met = true end
  end
end
flush_gaps()

local seats, people, wish_met = table.concat(taken, ';'), table.concat(pax, ','), met and '1' or '0'
-- The record's fixed fields packed in one (inventory/hold_record.py, FIXED order).
redis.call('HSET', KEYS[8], 'i', table.concat({'seat', ARGV[10], ARGV[11], account, ARGV[4], ARGV[5],
  seats, people, deadline, ARGV[9], ARGV[8], wish_met}, '\31'), 'state', 'held')
redis.call('ZADD', KEYS[9], deadline, hold_id)
local own = {}
for i, p in ipairs(pax) do
  own[2 * i - 1], own[2 * i] = p, hold_id
end
redis.call('HSET', KEYS[7], unpack(own))
redis.call('XADD', KEYS[10], '*', 'e', table.concat({ -- one field (inventory/outbox_event.py)
  'type', 'held', 'hold', hold_id, 'kind', 'seat', 'run', ARGV[10],
  'cls', ARGV[11], 'acct', account, 'a', ARGV[4], 'b', ARGV[5], 'seats', seats, 'pax', people,
  'deadline', deadline, 'change_of', ARGV[9], 'at', ARGV[1]}, '\31'))

local out = {OK, hold_id, deadline, wish_met}
for _, t in ipairs(taken) do
  out[#out + 1] = t
end
return out
