--[[
ping: the trivial script, used by /readyz (proves scripting works) and as the benchmarks'
baseline (the cost of one EVALSHA round trip with the same client setup).
KEYS: none
ARGV: none
Returns: 1
]]
return 1
