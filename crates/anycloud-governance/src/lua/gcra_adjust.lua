-- Moves the TAT of each limit by a signed amount, once a request's real token count is
-- known (see redis_ratelimit.rs). A refund never takes a scope below "full capacity now".
-- KEYS[i]: the TAT of limit i, in microseconds of Redis' clock.
-- ARGV[i]: the shift in microseconds (negative: tokens handed back).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + tonumber(ARGV[i])
  if new_tat <= now then
    redis.call('DEL', KEYS[i])
  else
    redis.call('SET', KEYS[i], string.format('%.0f', new_tat),
      'PX', math.ceil((new_tat - now) / 1000) + 1000)
  end
end
return 0
