-- audit_page.lua: one page of the audit stream for `GET /v1/admin/audit` (the lakehouse
-- export), with the stream's counters read in the same atomic step. The exporter counts
-- the entries it has consumed; with `entries-added` and the length taken at the moment
-- of the page it can tell exactly how many entries a trim removed before it read them
-- (trims only ever remove the oldest entries: XADD MAXLEN ~ and XTRIM MINID ~).
--
-- KEYS[1]   the audit stream, `ck:usage:log`
-- ARGV[1]   where the page starts: `-`, or `(<id>` for the entries after <id>
-- ARGV[2]   where it ends, inclusive: `+`, or an id
-- ARGV[3]   most entries to return, >= 1
--
-- Returns {length, entries-added, last-generated-id, entries}, the entries as XRANGE
-- gives them; {0, 0, '0-0', {}} when there is no stream yet.

local log = KEYS[1]
if redis.call('EXISTS', log) == 0 then
  return {0, 0, '0-0', {}}
end
-- XINFO STREAM answers a flat list of names and values.
local info = redis.call('XINFO', 'STREAM', log)
local facts = {}
for i = 1, #info - 1, 2 do
  facts[info[i]] = info[i + 1]
end
local page = redis.call('XRANGE', log, ARGV[1], ARGV[2], 'COUNT', ARGV[3])
return {facts['length'], facts['entries-added'], facts['last-generated-id'], page}
