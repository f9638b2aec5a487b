-- Compare-and-set of one domain's politeness state (see src/politeness.rs,
-- which computes the new state in Rust from what `GET` and `TIME` gave it).
--
-- KEYS[1]  the domain's state: a JSON string
-- ARGV[1]  the state the caller read ("" for none)
-- ARGV[2]  the new state ("" to delete it: the domain is idle)
-- ARGV[3]  the key's TTL in milliseconds
--
-- Returns 1 when the state was still ARGV[1] and is now ARGV[2], else 0
-- (another replica changed it in between: read again).

local current = redis.call('GET', KEYS[1])
if current == false then
  current = ''
end
if current ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
