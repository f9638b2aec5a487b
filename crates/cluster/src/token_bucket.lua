-- One request against a token bucket, atomically (see src/bucket.rs, which
-- holds the same rules for the in-process limiter).
--
-- KEYS[1]  the bucket: a hash with `tokens` and `ts` (milliseconds, Redis
--          server time, so replicas with skewed clocks agree)
-- ARGV[1]  capacity (burst, at least 1)
-- ARGV[2]  refill rate in tokens per second (already clamped by the caller)
-- ARGV[3]  the longest key TTL in milliseconds
--
-- Returns {allowed (0 or 1), remaining, retry_after_ms, reset_after_ms}.
-- Redis 5 or newer: scripts replicate their effects, so TIME may come
-- before a write.

local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 1000
local max_ttl = tonumber(ARGV[3])
local epsilon = 1e-9

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000

local stored = redis.pcall('HMGET', KEYS[1], 'tokens', 'ts')
if stored.err then
  -- Not a hash: something else wrote into our namespace. A fresh bucket
  -- replaces it rather than failing every request on this key.
  redis.call('DEL', KEYS[1])
  stored = {}
end
local tokens = tonumber(stored[1])
local ts = tonumber(stored[2])
if tokens == nil or ts == nil then
  tokens = capacity
else
  -- Server time can step back (a failover); that refills nothing, and the
  -- later time is kept so no interval is refilled twice.
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  now = math.max(now, ts)
end

local allowed = 0
local retry_after = 0
if tokens + epsilon >= 1 then
  allowed = 1
  tokens = math.max(0, tokens - 1)
else
  retry_after = math.max(0, math.ceil((1 - tokens) / rate - epsilon))
end
local reset_after = math.max(0, math.ceil((capacity - tokens) / rate - epsilon))

-- Fixed-point strings: tostring() would switch to exponent notation.
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens), 'ts', string.format('%.3f', now))
-- A bucket that has refilled completely is the same as no bucket.
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(1, math.min(reset_after, max_ttl))))

return {allowed, math.floor(tokens + epsilon), retry_after, reset_after}
