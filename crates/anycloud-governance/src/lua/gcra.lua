-- GCRA over several limits at once, all-or-nothing (see redis_ratelimit.rs).
-- KEYS[i]: the theoretical arrival time (TAT) of limit i, in microseconds of Redis' clock.
-- ARGV[1]: the period in microseconds; then per limit i:
--   ARGV[2i]: emission interval in microseconds (period / limit, may be fractional),
--   ARGV[2i+1]: this request's cost.
-- Returns {0, ahead_1, …, ahead_n} when every limit allows it (ahead = new TAT − now,
-- all spent), or {i, used_i, retry_after_i} for the first limit that refuses (nothing
-- spent anywhere). Times in microseconds.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local new_tats = {}
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + tonumber(ARGV[2 * i]) * tonumber(ARGV[2 * i + 1])
  if new_tat - now > period then
    return {i, math.floor(tat - now), math.ceil(new_tat - now - period)}
  end
  new_tats[i] = new_tat
end
local out = {0}
for i = 1, #KEYS do
  local ahead = new_tats[i] - now
  -- %.0f: Lua's default number format would write 1.7e+15 and lose the microseconds.
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]),
    'PX', math.ceil(ahead / 1000) + 1000)
  out[i + 1] = math.floor(ahead)
end
return out
