-- record_usage.lua: commits one usage record, once per request id: books it into the
-- ledger, releases the request's budget reservation, puts its actual tokens in place of
-- the reserved ones in the rate window it was counted in, adds its spend to rolling
-- budget windows and to the top-spender rankings. Sent after windows.lua, whose header
-- documents the key layouts.
--
-- KEYS[1]   dedupe marker, `ck:usage:seen:{<request_id>}`
-- KEYS[2]   audit stream, `ck:usage:log`
-- KEYS[3]   the request's reservation record, `ck:resv:req:{<request_id>}` (see
--           authorize.lua); the reservation and rate keys it names are used as named
-- KEYS[4..] nine per scope the record names (user, tenant, model, cost centre):
--   +1  `ck:ledger:<kind>:{<id>}:<YYYY-MM-DD>`   ledger hash of the booking day
--   +2  `ck:ledger:<kind>:{<id>}:<YYYY-MM>`      and of its month
--   +3  `ck:limits:<kind>:{<id>}`                the scope's own limit set
--   +4  `ck:limits:<kind>:{*}`                   its kind's default set
--   +5  `ck:roll:<kind>:{<id>}`                  rolling-window spend
--   +6  `ck:top:<kind>:cost_micros:<YYYY-MM-DD>` rankings of the booking day and month,
--   +7  `ck:top:<kind>:cost_micros:<YYYY-MM>`    by cost and by tokens
--   +8  `ck:top:<kind>:tokens:<YYYY-MM-DD>`
--   +9  `ck:top:<kind>:tokens:<YYYY-MM>`
-- ARGV[1]   dedupe window in seconds (integer >= 1): how long the marker lives
-- ARGV[2]   approximate cap on the audit stream's length (XADD MAXLEN ~)
-- ARGV[3]   the record as the filter sent it (JSON), for the audit stream
-- ARGV[4]   the UTC day the record is booked on (YYYY-MM-DD), for the audit stream
-- ARGV[5]   now, ms since the epoch (the service's clock): rolling windows book here
-- ARGV[6]   the record's tokens (input + output) and ARGV[7] its cost in micro-dollars,
--           both in [0, 2^53]
-- ARGV[8..7+n]  each scope's id, n = (#KEYS - 3) / 9: its member in the rankings
-- ARGV[8+n..]   field, increment pairs added to every ledger hash; increments are
--           integers in [0, 2^53]
--
-- Returns 1 when the record was booked, 0 when its request id was booked before within
-- the dedupe window (a retried batch, or the same record twice in one batch).
--
-- Rate windows: the actual tokens replace the reserved ones only while the window the
-- request was counted in is still the scope's current one. Once that window has ended
-- its count no longer matters; the reservation (a worst case) stood in for the request.
-- Usage without a reservation record (never authorized, as in fail-open mode, or
-- committed after the record's lifetime) changes no rate window.
--
-- Every check runs before the first write. Redis does not undo a script's earlier writes
-- when a later command fails, so a failure halfway would leave the record part-booked
-- and, had the marker been set, its retry skipped as a duplicate: the ledger would stay
-- wrong for good. Failing before any write leaves nothing behind, and the caller's 503
-- makes the filter retry. (Under maxmemory, Redis refuses only a script's first write,
-- so an out-of-memory refusal also leaves nothing behind.) Every key written is checked
-- for its type, and every limit set read, before the first write.
--
-- Not Redis Cluster safe: one record's keys carry different hash tags (request id, user,
-- tenant, ...) and so live in different slots.

local seen, log, record = KEYS[1], KEYS[2], KEYS[3]
local GROUP = 9
local scopes = (#KEYS - 3) / GROUP
local now = tonumber(ARGV[5])
local tokens, cost = tonumber(ARGV[6]), tonumber(ARGV[7])

if redis.call('EXISTS', seen) == 1 then
  return 0
end

local log_type = redis.call('TYPE', log)['ok']
if log_type ~= 'none' and log_type ~= 'stream' then
  return redis.error_reply('ERR ' .. log .. ' holds a ' .. log_type .. ', not a stream')
end

local fields, increments = {}, {}
for i = 8 + scopes, #ARGV, 2 do
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
local rolling, rankings = {}, {}
for s = 1, scopes do
  local k = 3 + (s - 1) * GROUP
  for _, ledger in ipairs({KEYS[k + 1], KEYS[k + 2]}) do
    -- HMGET raises WRONGTYPE on a key that is not a hash, still before any write.
    local current = redis.call('HMGET', ledger, unpack(fields))
    for f = 1, #fields do
      local total = current[f]
      if total and not integer(total) then
        return redis.error_reply('ERR ' .. ledger .. ' ' .. fields[f] .. ' is not an integer')
      end
      local saturate = tonumber(total or '0') + tonumber(increments[f]) > SAFE_TOTAL
      steps[#steps + 1] = {ledger, fields[f], increments[f], saturate}
    end
  end
  local e = effective(read_limits(KEYS[k + 3]), read_limits(KEYS[k + 4]), nil)
  if e.budget and e.budget.period.kind == 'rolling' then
    expect_type(KEYS[k + 5], 'hash')
    rolling[#rolling + 1] = {KEYS[k + 5], e.budget.period.window_ms}
  end
  local id = ARGV[7 + s]
  for r, amount in ipairs({cost, cost, tokens, tokens}) do
    expect_type(KEYS[k + 5 + r], 'zset')
    if amount > 0 then rankings[#rankings + 1] = {KEYS[k + 5 + r], amount, id} end
  end
end

-- The reservation record, written by authorize.lua. One it cannot read is left to
-- expire, and so is its reservation.
local reserved_tokens, member, releases, rates = resv_record_read(record)
if not member then
  releases, rates = {}, {}
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
for _, pair in ipairs(releases) do
  resv_release(pair[1], pair[2], member)
end
for _, pair in ipairs(rates) do
  local window = redis.call('HMGET', pair[1], 'start', 'tokens')
  if tonumber(window[1]) == tonumber(pair[2]) then
    local counted = math.max(0, (tonumber(window[2]) or 0) - reserved_tokens + tokens)
    redis.call('HSET', pair[1], 'tokens', int(counted))
  end
end
redis.call('DEL', record)
if tokens > 0 or cost > 0 then
  for _, window in ipairs(rolling) do
    roll_add(roll_open(window[1], window[2], now), tokens, cost)
  end
end
for _, ranking in ipairs(rankings) do
  redis.call('ZINCRBY', ranking[1], int(ranking[2]), ranking[3])
end
return 1
