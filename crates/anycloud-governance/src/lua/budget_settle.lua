-- Settle a reservation to the request's real cost (see redis_budget.rs).
-- KEYS as in budget_reserve.lua; ARGV[1] request id, ARGV[2] real cost (integer nano-USD).
-- A request id without a reservation (lease already expired, or spend replayed after an
-- outage) only adds its cost. A budget whose counter is gone is left alone: it will be
-- loaded from the store, which has this spend too.
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local held = redis.call('HGET', h, 'r:' .. ARGV[1])
  if held then
    if tonumber(held) > 0 then
      redis.call('HINCRBY', h, 'reserved', '-' .. held)
    end
    redis.call('HDEL', h, 'r:' .. ARGV[1])
    redis.call('ZREM', z, ARGV[1])
  end
  if tonumber(ARGV[2]) > 0 and redis.call('HEXISTS', h, 'spent') == 1 then
    redis.call('HINCRBY', h, 'spent', ARGV[2])
  end
end
return 0
