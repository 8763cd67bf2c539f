-- dead_letter.lua: keeps usage records (and lease releases) the service refused as
-- invalid in the dead-letter stream, capped like the audit stream: by length (XADD
-- MAXLEN ~) and by age (windows.lua, stream_trim_age). Sent after windows.lua.
--
-- KEYS[1]   the dead-letter stream, `ck:usage:dead`
-- ARGV[1]   approximate cap on its length (XADD MAXLEN ~), >= 1
-- ARGV[2]   approximate cap on its entries' age, ms (XTRIM MINID ~, by Redis's clock)
-- ARGV[3]   now by the service's clock, ms: each entry's `ts_ms`
-- ARGV[4..] three per entry: the error naming the field, the record as sent (cut to
--           4 KiB by the service), the record's full length in bytes
--
-- Returns how many entries were added.

local dead = KEYS[1]
local max_len, max_age_ms, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
expect_type(dead, 'stream')
local added = 0
for i = 4, #ARGV - 2, 3 do
  redis.call('XADD', dead, 'MAXLEN', '~', max_len, '*', 'error', ARGV[i], 'record', ARGV[i + 1],
    'record_bytes', ARGV[i + 2], 'ts_ms', now)
  added = added + 1
end
stream_trim_age(dead, max_age_ms)
return added
