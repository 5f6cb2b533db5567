--[[
include seat_map: moving seats between occupancy patterns, with every derived structure of
the seat map kept up to date (inventory/seat_keys.py). Included where a script says
`-- include: seat_map` (inventory/scripts.py pastes it there), in seat_hold, seat_release
and seat_uncool, so all three change seats the same way.
Expects: local `nseg` (the run's segment count) and the unit's keys as seat_hold takes them:
KEYS[2] seats, KEYS[3] bypat, KEYS[4] pcount, KEYS[5] gapidx, KEYS[6] gaps.
Defines: W, gaps, dirty, top, gap_bounds, gap_range, reindex, shift(p, q, tails),
flush_gaps().
Writes happen in shift and flush_gaps only; call flush_gaps once, after the last shift.
]]
local W = nseg + 1
local gaps -- the gap cells, read on first use
local dirty = {} -- gap cell -> new byte, written once at the end

local function top(c)
  if dirty[c] then return dirty[c] end
  gaps = gaps or redis.call('GET', KEYS[6])
  return string.byte(gaps, c)
end
-- ZRANGE ... BYLEX REV bounds of one gap's patterns, by its "<g0><g1>" member prefix
local function gap_bounds(prefix) return '(' .. prefix .. '}', '[' .. prefix .. '|' end
local function gap_range(g0, g1) return gap_bounds(string.format('%02d%02d', g0, g1)) end

-- A pattern got its first seats (adding) or lost its last: index or unindex it under each
-- of its free gaps, and keep each gap's top byte (where it was the top, the next best takes
-- over). One function, its helpers inline: every function a script defines is a new
-- closure on every call, and most shifts neither create nor empty a bucket.
local function reindex(p, adding)
  local pop = select(2, string.gsub(p, '1', ''))
  local members, cells, init = {}, {}, 1
  while true do -- the maximal free runs [g0, g1) of p
    local s, e = string.find(p, '0+', init)
    if not s then break end
    members[#members + 1] = string.format('%02d%02d|%02d|', s - 1, e, pop) .. p
    cells[#cells + 1] = (s - 1) * W + e + 1
    init = e + 1
  end
  if #members == 0 then return end
  if adding then
    local args = {}
    for i, m in ipairs(members) do
      args[2 * i - 1], args[2 * i] = '0', m
      if top(cells[i]) < pop + 1 then dirty[cells[i]] = pop + 1 end
    end
    redis.call('ZADD', KEYS[5], unpack(args))
    return
  end
  redis.call('ZREM', KEYS[5], unpack(members))
  for i, c in ipairs(cells) do
    if top(c) == pop + 1 then
      local hi, lo = gap_bounds(string.sub(members[i], 1, 4))
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
    reindex(p, false)
  end
  if redis.call('HINCRBY', KEYS[4], q, k) == k then reindex(q, true) end
end

local function flush_gaps()
  for c, v in pairs(dirty) do
    redis.call('SETRANGE', KEYS[6], c - 1, string.char(v))
  end
end
