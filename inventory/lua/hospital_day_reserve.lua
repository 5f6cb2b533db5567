--[[
hospital_day_reserve: a patient's per-day gate across departments (issue 6).
"One registration per department per day" and "at most N departments per day" span
resources (a department's doctors live in different shards), so they are checked here,
in the PERSON's shard, before the slot hold; the caller gives the entry back if the hold
is refused. An entry counts until its deadline: a hold's payment deadline, extended to the
end of the day once confirmed, so an expired hold stops counting without any sweeper.
KEYS[1] the person-day gate hash: department id -> "<hold id>|<until ms>"
ARGV[1] now_ms
ARGV[2] department id
ARGV[3] hold id
ARGV[4] until_ms (the entry stops counting after it)
ARGV[5] max departments per day
Returns:
  {0}             counted now
  {1}             this hold was already counted (a retry, or a confirm extending it)
  {-20, hold_id}  another live registration in this department this day
  {-21}           the daily number of departments is reached
]]
local key = KEYS[1]
local now = tonumber(ARGV[1])
local wanted_until = tonumber(ARGV[4])
local entries = redis.call('HGETALL', key)
local live = 0
local latest = wanted_until
local mine = nil
for i = 1, #entries, 2 do
  local dept, value = entries[i], entries[i + 1]
  local sep = string.find(value, '|', 1, true)
  local hold = string.sub(value, 1, sep - 1)
  local until_ms = tonumber(string.sub(value, sep + 1))
  if until_ms < now then
    -- Dead entries (an unpaid hold past its deadline) are cleaned up; no rule depends on them.
    redis.call('HDEL', key, dept)
  elseif dept == ARGV[2] then
    if hold ~= ARGV[3] then
      return {-20, hold}
    end
    mine = until_ms
  else
    live = live + 1
    if until_ms > latest then
      latest = until_ms
    end
  end
end
if mine then
  if wanted_until > mine then
    redis.call('HSET', key, ARGV[2], ARGV[3] .. '|' .. ARGV[4])
    if redis.call('PEXPIRETIME', key) < wanted_until then
      redis.call('PEXPIREAT', key, wanted_until)
    end
  end
  return {1}
end
if live >= tonumber(ARGV[5]) then
  return {-21}
end
redis.call('HSET', key, ARGV[2], ARGV[3] .. '|' .. ARGV[4])
if redis.call('PEXPIRETIME', key) < latest then
  redis.call('PEXPIREAT', key, latest)
end
return {0}
