-- release.lua: gives back lease slots the filter did not use (see authorize.lua,
-- "Leases"): each slot's budget reservation is released and, while the rate window it
-- was counted in is still the current one, the request and tokens it was counted as
-- are taken back out, and so is what it held (windows.lua, "Held"). Sent after windows.lua, whose header documents the key layouts.
--
-- KEYS      the slots' reservation records, `ck:resv:req:{<slot id>}`, any number (the
--           service sends up to 64); a record named twice is released once
-- ARGV      none
--
-- Returns how many slots were released: a slot whose record no longer exists (already
-- released, used by a booked request, or expired) counts 0. Releasing is idempotent,
-- so a retried batch changes nothing. A record this script cannot read is left to
-- expire. Slots sharing a rate window or a reservation total have it read and written
-- once, ending as releasing them one call each would.
--
-- Every check runs before the first write, as in record_usage.lua: a failing one leaves
-- every slot of the call unreleased, for the retry.

local slots, seen = {}, {}
for _, record in ipairs(KEYS) do
  if not seen[record] then
    seen[record] = true
    local held = resv_record_read(record)
    if held.exists then
      held.key = record
      slots[#slots + 1] = held
    end
  end
end
if #slots == 0 then
  return 0
end

local releases, fixes = resv_releases(true), rate_fixes()
local deleted = {}
for _, held in ipairs(slots) do
  if held.member then
    for _, pair in ipairs(held.releases) do
      resv_release(releases, pair[1], pair[2], held.member)
    end
  end
  for _, pair in ipairs(held.rates) do
    local w = rate_fix(fixes, pair[1], pair[2])
    if w then
      w.requests = math.max(0, w.requests - 1)
      w.tokens = math.max(0, w.tokens - held.tokens)
      w.held = math.max(0, w.held - 1)
      w.held_tokens = math.max(0, w.held_tokens - held.tokens)
      w.changed.requests, w.changed.tokens = true, true
      w.changed.held, w.changed.held_tokens = true, true
    end
  end
  deleted[#deleted + 1] = held.key
end
resv_releases_finish(releases)
rate_fixes_finish(fixes)
redis.call('DEL', unpack(deleted))
return #slots
