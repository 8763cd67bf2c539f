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
local reserved_tokens, member, releases, rates = resv_record_read(record)

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
