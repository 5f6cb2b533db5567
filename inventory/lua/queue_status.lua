--[[
queue_status: where an account stands, after admitting whoever is next. Admission is paced
to the remaining stock: positions are admitted in order while
admitted-but-unused < k * remaining (at most max_admit per call, to bound the script's
time). An admission lasts ttl ms; one unused by then lapses (the place in line is gone).
An admitted account gets one token nonce at a time (nonce_candidate when it has none).
KEYS[1] meta   KEYS[2] joins   KEYS[3] order zset   KEYS[4] admitted zset (account -> deadline)
KEYS[5] nonces hash (account -> current token nonce)   KEYS[6] done set (accounts that hold)
ARGV[1] now_ms
ARGV[2] account_id
ARGV[3] remaining stock measured by the caller, or -1 to keep the sale's own count
ARGV[4] nonce_candidate
ARGV[5] max_admit (per call)
ARGV[6] when ARGV[3] was measured (ms): a measurement older than the last counted hold
        (queue_finish) is ignored, or a stale read would admit people for places just taken
Returns: {0, state, position, upto, live, remaining, served, lapsed, deadline_ms, nonce,
          sold_out_now, total, n_window}
  state: draw_pending | waiting | admitted | lapsed | done | sold_out | over
  sold_out_now: 1 when this call turned the sale sold out (the caller notifies everyone)
         {-1} no such sale   {-5} the account has not joined
]]
local now = tonumber(ARGV[1])
local m = redis.call('HMGET', KEYS[1], 'drawn', 'remaining', 'k', 'ttl', 'upto', 'served',
  'lapsed', 'status', 'ends', 'retain', 'n_window', 'counted')
if not m[10] then
  return {-1}
end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
  return {-5}
end
local remaining = tonumber(m[2])
local measured = tonumber(ARGV[3])
if measured >= 0 and measured ~= remaining and tonumber(ARGV[6]) >= tonumber(m[12] or 0) then
  remaining = measured
  redis.call('HSET', KEYS[1], 'remaining', remaining)
end
local upto, served, lapsed = tonumber(m[5]), tonumber(m[6]), tonumber(m[7])
local status = m[8]
if m[1] ~= '1' then
  return {0, 'draw_pending', 0, 0, 0, remaining, served, lapsed, 0, '', 0, 0, 0}
end
-- Admissions at or past their deadline lapse (the token expires at that moment too).
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
  for _, acct in ipairs(expired) do
    redis.call('HDEL', KEYS[5], acct)
  end
  lapsed = redis.call('HINCRBY', KEYS[1], 'lapsed', #expired)
end
local flipped = 0
if remaining <= 0 and status ~= 'sold_out' then
  status = 'sold_out'
  redis.call('HSET', KEYS[1], 'status', 'sold_out')
  flipped = 1
end
local total = redis.call('ZCARD', KEYS[3])
local live = redis.call('ZCARD', KEYS[4])
if status ~= 'sold_out' and now < tonumber(m[9]) and upto < total then
  local allowed = tonumber(m[3]) * remaining - live
  local cap = tonumber(ARGV[5])
  if allowed > cap then
    allowed = cap
  end
  if allowed > 0 then
    local last = math.min(upto + allowed, total)
    local deadline = now + tonumber(m[4])
    for _, acct in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], upto + 1, last)) do
      redis.call('ZADD', KEYS[4], deadline, acct)
    end
    upto = last
    redis.call('HSET', KEYS[1], 'upto', upto)
    redis.call('PEXPIREAT', KEYS[4], m[10])
    live = redis.call('ZCARD', KEYS[4])
  end
end
local pos = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[2]) or 0)
local state, deadline, nonce = 'waiting', 0, ''
local admitted_until = redis.call('ZSCORE', KEYS[4], ARGV[2])
if redis.call('SISMEMBER', KEYS[6], ARGV[2]) == 1 then
  state = 'done'
elseif status == 'sold_out' then
  state = 'sold_out'
elseif admitted_until then
  state = 'admitted'
  deadline = tonumber(admitted_until)
  nonce = redis.call('HGET', KEYS[5], ARGV[2])
  if not nonce then
    nonce = ARGV[4]
    redis.call('HSET', KEYS[5], ARGV[2], nonce)
    redis.call('PEXPIREAT', KEYS[5], m[10])
  end
elseif now >= tonumber(m[9]) then
  state = 'over'
elseif pos > 0 and pos <= upto then
  state = 'lapsed'
end
return {0, state, pos, upto, live, remaining, served, lapsed, deadline, nonce, flipped, total,
  tonumber(m[11])}
