--[[
queue_open: create the waiting room of one queued sale (idempotent). Every key of the sale
lives in the sale's shard; all of them expire at retain_until_ms.
KEYS[1] the sale's meta hash
ARGV[1] now_ms
ARGV[2] window_ends_ms (joiners before it are drawn; later ones queue FCFS behind them)
ARGV[3] release_ms
ARGV[4] ends_ms (after it the sale is no longer queued)
ARGV[5] admit_factor k (admitted-but-unused <= k * remaining stock)
ARGV[6] admission_ttl_ms (how long an admission, and its token, lasts)
ARGV[7] stock
ARGV[8] retain_until_ms
Returns: {0} created   {1} already existed (left untouched)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1}
end
redis.call('HSET', KEYS[1],
  'window_ends', ARGV[2], 'release', ARGV[3], 'ends', ARGV[4], 'k', ARGV[5],
  'ttl', ARGV[6], 'stock', ARGV[7], 'remaining', ARGV[7], 'retain', ARGV[8],
  'closed', 0, 'drawn', 0, 'n_window', 0, 'arrivals', 0, 'late', 0, 'upto', 0,
  'served', 0, 'lapsed', 0, 'status', 'open', 'created', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[8])
return {0}
