--[[
include slot_release_decision: whether a slot hold may end now, and how, before anything
is written (Lua has no rollback). Included by slot_release and slot_free, so a hold ends by
the same rules whether its place goes back on sale or cools for the waitlist.
Expects locals: hold_key, deadlines_key, now (ARGV[1] as a number), new_state (ARGV[4]).
Defines: h, the hold's HMGET (account, state, slot, person, deadline, held, idem,
confirmed). Returns from the script: {-1} no such hold, {-6} not the caller's (ARGV[3]),
{1, state, slot, person, ''} already ended, {-7} not releasable this way (an expiry of a
paid hold also drops its deadline), {-11} expiry before the deadline.
]]
local h = redis.call('HMGET', hold_key, 'account', 'state', 'slot', 'person', 'deadline',
  'held', 'idem', 'confirmed')
if not h[1] then
  return {-1}
end
if ARGV[3] ~= '' and h[1] ~= ARGV[3] then
  return {-6}
end
if h[2] == 'cancelled' or h[2] == 'expired' then
  return {1, h[2], h[3], h[4], ''}
end
if new_state == 'expired' then
  -- Only a hold that was never paid expires, and only at its deadline.
  if h[2] ~= 'held' then
    redis.call('ZREM', deadlines_key, ARGV[2])
    return {-7}
  end
  if now < tonumber(h[5]) then
    return {-11}
  end
elseif new_state ~= 'cancelled' then
  return {-7}
end
