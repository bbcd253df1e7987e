-- Settle a reservation to the request's real cost (see redis_budget.rs).
-- KEYS as in budget_reserve.lua; ARGV[1] request id, ARGV[2] real cost (integer nano-USD),
-- ARGV[3] mode:
--   'first': the settle's first try. Releases the reservation if held (or the tombstone
--     its expired lease left) and adds the cost. A request id without either (spend
--     counted by an instance whose reserve never reached this Redis) only adds its cost.
--   'retry': a settle tried before whose answer never came (Redis hung or the link
--     dropped): it may have run. Runs only if the reservation (or its tombstone) is still
--     there; otherwise the earlier try ran, and adding again would count the cost twice.
--   'once': spend settled without Redis, added once per request id (the id is kept in
--     the counter as 'd:<id>' until the counter expires).
-- A budget whose counter is gone is left alone: it will be loaded from the store, which
-- has this spend too.
local mode = ARGV[3] or 'first'
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local add = true
  if mode == 'once' then
    if redis.call('HSETNX', h, 'd:' .. ARGV[1], 1) == 0 then
      add = false
    end
  else
    local held = redis.call('HGET', h, 'r:' .. ARGV[1])
    if held then
      if tonumber(held) > 0 then
        redis.call('HINCRBY', h, 'reserved', '-' .. held)
      end
      redis.call('HDEL', h, 'r:' .. ARGV[1])
      redis.call('ZREM', z, ARGV[1])
    elseif redis.call('HDEL', h, 'x:' .. ARGV[1]) == 0 and mode == 'retry' then
      add = false
    end
  end
  if add and tonumber(ARGV[2]) > 0 and redis.call('HEXISTS', h, 'spent') == 1 then
    redis.call('HINCRBY', h, 'spent', ARGV[2])
  end
end
return 0
