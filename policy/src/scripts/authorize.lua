-- authorize.lua: per-user fixed-window request counter, checked and taken atomically.
--
-- KEYS[1]  counter key, `ck:rl:req:{user:<uuid>}`. The braces are a Redis Cluster hash
--          tag: every key of one user lands in one slot, so later scripts can touch the
--          user's other counters in the same call.
-- ARGV[1]  limit: requests allowed per window (integer >= 1)
-- ARGV[2]  window length in milliseconds (integer >= 1)
--
-- Returns {allowed, count, pttl}:
--   allowed  1 if this request took a slot, 0 if the window is full
--   count    requests counted in the current window, including this one when allowed
--   pttl     milliseconds until the window resets
--
-- A denied request takes no slot (check first, then INCR): the counter never exceeds
-- the limit, and a client hammering a full window does not push its own reset away
-- (the window is fixed from its first request, and only that request sets the TTL).

local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local pttl = redis.call('PTTL', KEYS[1])

-- -1 means the key exists without an expiry (a crash between INCR and PEXPIRE is
-- impossible inside a script, but a manual SET is not). Without this repair the user
-- would stay limited forever.
local function ensure_expiry()
  if pttl < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
    pttl = window
  end
end

if count >= limit then
  ensure_expiry()
  return {0, count, pttl}
end

count = redis.call('INCR', KEYS[1])
ensure_expiry()
return {1, count, pttl}
