-- Check-and-reserve a request's worst-case cost under several budgets at once (see
-- redis_budget.rs). All amounts are integer nano-USD.
-- KEYS[2i-1]: budget i's counter hash {spent, reserved, r:<request id> = amount held,
-- x:<request id> = a lease that ran out, d:<id> = spend added once (budget_settle.lua)};
-- KEYS[2i]: budget i's leases, a sorted set of request ids scored by expiry (ms).
-- ARGV[1] request id, ARGV[2] amount, ARGV[3] lease (ms), ARGV[4] key TTL (s),
-- ARGV[4+i] budget i's limit.
-- Returns {0} when reserved under every budget; {1, i, j, …} when budgets i, j, … have
-- no counter yet (the caller loads them from the store and calls again); {2, i, spent,
-- reserved} when budget i would be exceeded (nothing reserved anywhere).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS / 2
local missing = {1}
for i = 1, n do
  if redis.call('HEXISTS', KEYS[2 * i - 1], 'spent') == 0 then
    missing[#missing + 1] = i
  end
end
if #missing > 1 then
  return missing
end
local amount = tonumber(ARGV[2])
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  -- Requests whose instance died before settling: their lease ran out, give it back.
  -- A tombstone 'x:<id>' stays, so a settle retried later can tell "lease ran out" (add
  -- the cost) from "already settled" (do not add it again): see budget_settle.lua.
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now)) do
    local held = redis.call('HGET', h, 'r:' .. id)
    if held and tonumber(held) > 0 then
      redis.call('HINCRBY', h, 'reserved', '-' .. held)
    end
    if held then
      redis.call('HSET', h, 'x:' .. id, 1)
    end
    redis.call('HDEL', h, 'r:' .. id)
    redis.call('ZREM', z, id)
  end
  local spent = tonumber(redis.call('HGET', h, 'spent'))
  local reserved = tonumber(redis.call('HGET', h, 'reserved') or '0')
  if spent + reserved + amount > tonumber(ARGV[4 + i]) then
    return {2, i, spent, reserved}
  end
end
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBY', h, 'reserved', ARGV[2])
  redis.call('HSET', h, 'r:' .. ARGV[1], ARGV[2])
  redis.call('ZADD', z, string.format('%.0f', now + tonumber(ARGV[3])), ARGV[1])
  redis.call('EXPIRE', h, ARGV[4])
  redis.call('EXPIRE', z, ARGV[4])
end
return {0}
