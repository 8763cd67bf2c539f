-- release.lua: gives back one lease slot the filter did not use (see authorize.lua,
-- "Leases"): its budget reservation is released and, while the rate window it was
-- counted in is still the current one, the request and tokens it was counted as are
-- taken back out. Sent after windows.lua, whose header documents the key layouts.
--
-- KEYS[1]   the slot's reservation record, `ck:resv:req:{<slot id>}`
-- ARGV      none
--
-- Returns 1 when the slot was released, 0 when it no longer held anything (already
-- released, used by a booked request, or expired): releasing is idempotent, so a retried
-- batch changes nothing. A record this script cannot read is left to expire.

local record = KEYS[1]
if redis.call('EXISTS', record) == 0 then
  return 0
end
expect_type(record, 'hash')
local held = redis.call('HMGET', record, 't', 'm', 'z', 'r')
local reserved_tokens, member = tonumber(held[1]) or 0, held[2]
local function decoded(text)
  if not text then return {} end
  local ok, value = pcall(cjson.decode, text)
  if ok and type(value) == 'table' then return value end
  return {}
end
local releases, rates = {}, {}
for _, pair in ipairs(decoded(held[3])) do
  if type(pair[1]) == 'string' and type(pair[2]) == 'string' then
    expect_type(pair[1], 'zset')
    expect_type(pair[2], 'hash')
    releases[#releases + 1] = pair
  end
end
for _, pair in ipairs(decoded(held[4])) do
  if type(pair[1]) == 'string' and tonumber(pair[2]) then
    expect_type(pair[1], 'hash')
    rates[#rates + 1] = pair
  end
end

if member then
  for _, pair in ipairs(releases) do
    resv_release(pair[1], pair[2], member)
  end
end
for _, pair in ipairs(rates) do
  local window = redis.call('HMGET', pair[1], 'start', 'requests', 'tokens')
  if tonumber(window[1]) == tonumber(pair[2]) then
    redis.call('HSET', pair[1],
      'requests', int(math.max(0, (tonumber(window[2]) or 0) - 1)),
      'tokens', int(math.max(0, (tonumber(window[3]) or 0) - reserved_tokens)))
  end
end
redis.call('DEL', record)
return 1
