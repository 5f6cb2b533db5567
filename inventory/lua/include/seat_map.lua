--[[
include seat_map: moving seats between occupancy patterns, with every derived structure of
the seat map kept up to date (inventory/seat_keys.py). Included where a script says
`-- include: seat_map` (inventory/scripts.py pastes it there), in seat_hold, seat_release
and seat_uncool, so all three change seats the same way.
Expects: local `nseg` (the run's segment count) and the unit's keys as seat_hold takes them:
KEYS[2] seats, KEYS[3] bypat, KEYS[4] pcount, KEYS[5] gapidx, KEYS[6] gaps.
Defines: W, gaps, dirty, cell, top, gap_member, gap_range, popcount, free_gaps,
index_pattern, unindex_pattern, shift(p, q, tails), flush_gaps().
Writes happen in shift and flush_gaps only; call flush_gaps once, after the last shift.
]]
local W = nseg + 1
local gaps -- the gap cells, read on first use
local dirty = {} -- gap cell -> new byte, written once at the end

local function cell(g0, g1) return g0 * W + g1 + 1 end
local function top(c)
  if dirty[c] then return dirty[c] end
  gaps = gaps or redis.call('GET', KEYS[6])
  return string.byte(gaps, c)
end
local function gap_member(g0, g1, pop, p) return string.format('%02d%02d|%02d|', g0, g1, pop) .. p end
local function gap_range(g0, g1) -- ZRANGE ... BYLEX REV bounds of one gap's patterns
  local prefix = string.format('%02d%02d', g0, g1)
  return '(' .. prefix .. '}', '[' .. prefix .. '|'
end
local function popcount(p) return select(2, string.gsub(p, '1', '')) end

-- The maximal free runs of a pattern, flat: g0, g1, g0, g1, ...
local function free_gaps(p)
  local out, init = {}, 1
  while true do
    local s, e = string.find(p, '0+', init)
    if not s then return out end
    out[#out + 1] = s - 1
    out[#out + 1] = e
    init = e + 1
  end
end

-- A pattern got its first seats: index it under each of its gaps.
local function index_pattern(p)
  local pop, g, args = popcount(p), free_gaps(p), {}
  for i = 1, #g, 2 do
    args[i], args[i + 1] = '0', gap_member(g[i], g[i + 1], pop, p)
    local c = cell(g[i], g[i + 1])
    if top(c) < pop + 1 then dirty[c] = pop + 1 end
  end
  if #args > 0 then redis.call('ZADD', KEYS[5], unpack(args)) end
end

-- A pattern lost its last seat: unindex it; where it was the top, the next best takes over.
local function unindex_pattern(p)
  local pop, g, args = popcount(p), free_gaps(p), {}
  for i = 1, #g, 2 do
    args[#args + 1] = gap_member(g[i], g[i + 1], pop, p)
  end
  if #args == 0 then return end
  redis.call('ZREM', KEYS[5], unpack(args))
  for i = 1, #g, 2 do
    local c = cell(g[i], g[i + 1])
    if top(c) == pop + 1 then
      local hi, lo = gap_range(g[i], g[i + 1])
      local best = redis.call('ZRANGE', KEYS[5], hi, lo, 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
      dirty[c] = best and tonumber(string.sub(best, 6, 7)) + 1 or 0
    end
  end
end

-- Move seats (by tail) from pattern p to q. The 余票 counts need no write here: they are
-- read from pcount (inventory/seat_engine.py, remaining).
local function shift(p, q, tails)
  local k, old, new, rec = #tails, {}, {}, {}
  for i, t in ipairs(tails) do
    local member = q .. '|' .. t
    old[i] = p .. '|' .. t
    new[2 * i - 1], new[2 * i] = '0', member
    rec[2 * i - 1], rec[2 * i] = string.sub(t, 1, 5), member
  end
  redis.call('ZREM', KEYS[3], unpack(old))
  redis.call('ZADD', KEYS[3], unpack(new))
  redis.call('HSET', KEYS[2], unpack(rec))
  if redis.call('HINCRBY', KEYS[4], p, -k) == 0 then
    redis.call('HDEL', KEYS[4], p)
    unindex_pattern(p)
  end
  if redis.call('HINCRBY', KEYS[4], q, k) == k then index_pattern(q) end
end

local function flush_gaps()
  for c, v in pairs(dirty) do
    redis.call('SETRANGE', KEYS[6], c - 1, string.char(v))
  end
end
