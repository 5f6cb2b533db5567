--[[
include seat_hold_record: HOLD_FIXED, the pattern that unpacks a seat hold record's packed
field `i` (inventory/hold_record.py) into its twelve fixed fields, in this order:
kind, run, cls, acct, a, b, seats, pax, deadline, change_of, fp, wish_met.
Use: local kind, run, cls, acct, a, b, seats, pax, deadline, change_of, fp, wish_met =
  string.match(record_i, HOLD_FIXED)
The fields that change later (state, confirmed, changed_to, ended, gone, gone_at:<place>,
abort:<new hold>) are fields of their own.
]]
local HOLD_FIXED = '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)$'
