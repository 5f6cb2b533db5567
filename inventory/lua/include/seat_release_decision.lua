--[[
include seat_release_decision: which state a release moves a seat hold to, or why it
refuses, before anything is written (Lua has no rollback). Included by seat_release and
seat_free, so a hold is released by the same rules whether its seats go back on sale or
cool for the waitlist. abort_change is seat_release's alone and is decided before this.
Expects locals: mode, state, change_of, extra (ARGV[6]), gone (the hold's `gone` field or
''), now, h (the hold's fields by number: ... [6] pax, [7] deadline, [9] changed_to), hold_key, and
the codes OK, REPLAY, BAD_REQUEST, HOLD_NOT_LIVE, NOT_DUE, CHANGE_PENDING, CHANGE_ABORTED.
Defines: target (cancelled | expired | changed | released_one), frees(place); for
release_one, `extra` becomes the place as a canonical string. Returns from the script with
a refusal or a REPLAY when there is nothing to do.
]]
local target
if mode == 'cancel' then
  if state == 'held' and change_of ~= '' and extra ~= '1' then return {CHANGE_PENDING} end
  if state ~= 'held' and state ~= 'confirmed' then return {REPLAY, state} end
  target = 'cancelled'
elseif mode == 'expire' then
  if state ~= 'held' then return {REPLAY, state} end
  if not now or now < tonumber(h[7]) then return {NOT_DUE} end
  if change_of ~= '' and extra ~= '1' then return {CHANGE_PENDING} end
  target = 'expired'
elseif mode == 'change' and extra ~= '' then
  -- The old ticket is where a change is decided; the first decision stands.
  if state == 'changed' and h[9] == extra then return {REPLAY, 'changed'} end
  if state == 'changed' then return {HOLD_NOT_LIVE, state} end
  if redis.call('HEXISTS', hold_key, 'abort:' .. extra) == 1 then return {CHANGE_ABORTED} end
  if state ~= 'confirmed' then return {HOLD_NOT_LIVE, state} end
  target = 'changed'
elseif mode == 'release_one' then
  if state ~= 'confirmed' then return {HOLD_NOT_LIVE, state} end
  local k, n = tonumber(extra), select(2, string.gsub(h[6], '[^,]+', ''))
  if not k or k < 1 or k > n or k % 1 ~= 0 then return {BAD_REQUEST} end
  if string.find(gone, ',' .. k .. ',', 1, true) then return {REPLAY, 'released_one'} end
  if n - select(2, string.gsub(gone, '%d+', '')) <= 1 then return {BAD_REQUEST} end
  extra, target = tostring(k), 'released_one'
else
  return {BAD_REQUEST}
end
-- The places this call frees: one for release_one, else every place not gone already.
local function frees(i)
  if target == 'released_one' then return tostring(i) == extra end
  return not string.find(gone, ',' .. i .. ',', 1, true)
end
