-- record_usage.lua: books one usage record into the ledger, once per request id.
--
-- KEYS[1]   dedupe marker, `ck:usage:seen:{<request_id>}`
-- KEYS[2]   audit stream, `ck:usage:log`
-- KEYS[3..] ledger hashes the record adds to: `ck:ledger:<scope>:{<id>}:<YYYY-MM-DD>` and
--           `ck:ledger:<scope>:{<id>}:<YYYY-MM>` for each scope the record names
-- ARGV[1]   dedupe window in seconds (integer >= 1): how long the marker lives
-- ARGV[2]   approximate cap on the audit stream's length (XADD MAXLEN ~)
-- ARGV[3]   the record as the filter sent it (JSON), for the audit stream
-- ARGV[4]   the UTC day the record is booked on (YYYY-MM-DD), for the audit stream
-- ARGV[5..] field, increment pairs added to every ledger hash; increments are integers
--           in [0, 2^53]
--
-- Returns 1 when the record was booked, 0 when its request id was booked before within
-- the dedupe window (a retried batch, or the same record twice in one batch).
--
-- Every check runs before the first write. Redis does not undo a script's earlier writes
-- when a later command fails, so a failure halfway would leave the record part-booked
-- and, had the marker been set, its retry skipped as a duplicate: the ledger would stay
-- wrong for good. Failing before any write leaves nothing behind, and the caller's 503
-- makes the filter retry. (Under maxmemory, Redis refuses only a script's first write,
-- so an out-of-memory refusal also leaves nothing behind.)
--
-- Not Redis Cluster safe: one record's keys carry different hash tags (request id, user,
-- tenant, ...) and so live in different slots.

local seen, log = KEYS[1], KEYS[2]

if redis.call('EXISTS', seen) == 1 then
  return 0
end

local log_type = redis.call('TYPE', log)['ok']
if log_type ~= 'none' and log_type ~= 'stream' then
  return redis.error_reply('ERR ' .. log .. ' holds a ' .. log_type .. ', not a stream')
end

local fields, increments = {}, {}
for i = 5, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  increments[#increments + 1] = ARGV[i + 1]
end

-- HINCRBY fails past 2^63 - 1. No real usage gets there, but a filter bug repeating
-- 2^53-token records could, and failing would wedge that filter's retries for good; the
-- total saturates at the maximum instead. Lua numbers are doubles, so the test keeps a
-- margin (2^54) far wider than their rounding near 2^63 (2^10).
local INT64_MAX = '9223372036854775807'
local SAFE_TOTAL = 2^63 - 2^54

-- A value HINCRBY can add to. Positive values of any size are fine (too large ones take
-- the saturating path); only a hand-written non-integer, or a negative too long to be
-- an int64, would make HINCRBY fail.
local function integer(value)
  return value == '0' or string.match(value, '^[1-9]%d*$') ~= nil
    or (string.match(value, '^%-[1-9]%d*$') ~= nil and #value <= 19)
end

local steps = {}
for k = 3, #KEYS do
  -- HMGET raises WRONGTYPE on a key that is not a hash, still before any write.
  local current = redis.call('HMGET', KEYS[k], unpack(fields))
  for f = 1, #fields do
    local now = current[f]
    if now and not integer(now) then
      return redis.error_reply('ERR ' .. KEYS[k] .. ' ' .. fields[f] .. ' is not an integer')
    end
    local saturate = tonumber(now or '0') + tonumber(increments[f]) > SAFE_TOTAL
    steps[#steps + 1] = {KEYS[k], fields[f], increments[f], saturate}
  end
end

redis.call('XADD', log, 'MAXLEN', '~', ARGV[2], '*', 'record', ARGV[3], 'day', ARGV[4])
redis.call('SET', seen, '1', 'NX', 'EX', ARGV[1])
for _, step in ipairs(steps) do
  if step[4] then
    redis.call('HSET', step[1], step[2], INT64_MAX)
  else
    redis.call('HINCRBY', step[1], step[2], step[3])
  end
end
return 1
