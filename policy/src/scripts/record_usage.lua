-- record_usage.lua: commits a chunk of usage records, each once per request id: books
-- it into the ledger, releases the request's budget reservation, puts its actual tokens
-- in place of the reserved ones in the rate window it was counted in, adds its spend to
-- rolling budget windows and to the top-spender rankings. Sent after windows.lua, whose
-- header documents the key layouts.
--
-- A chunk ends in the same state as booking its records one call each, in order; it is
-- cheaper because what records share is read and written once: a ledger hash is read
-- once and written with one HSET (field totals summed), a limit set is read once, a
-- rolling window is opened and added to once, a ranking member gets one ZINCRBY, a type
-- is checked once. Per record stay the dedupe marker, the audit stream entry and the
-- reservation's release.
--
-- KEYS[1]        audit stream, `ck:usage:log`
-- KEYS[2r], KEYS[2r+1]   for each record r = 1..n (n = ARGV[5]): its dedupe marker,
--                `ck:usage:seen:{<request_id>}`, and its request's reservation record,
--                `ck:resv:req:{<request_id>}` (see authorize.lua); the reservation and
--                rate keys a record names are used as named
-- KEYS[2n+2..]   nine per scope group, g = (#KEYS - 1 - 2n - h) / 9 groups: a scope (user,
--                tenant, model, cost centre) with its id and booking day, listed once
--                however many records of the chunk name it; a model's id is the
--                record's model key when it has one (so client-chosen names share
--                `other`), else its model:
--   +1  `ck:ledger:<kind>:{<id>}:<YYYY-MM-DD>`   ledger hash of the booking day
--   +2  `ck:ledger:<kind>:{<id>}:<YYYY-MM>`      and of its month
--   +3  `ck:limits:<kind>:{<id>}`                the scope's own limit set
--   +4  `ck:limits:<kind>:{*}`                   its kind's default set
--   +5  `ck:roll:<kind>:{<id>}`                  rolling-window spend
--   +6  `ck:top:<kind>:cost_micros:<YYYY-MM-DD>` rankings of the booking day and month,
--   +7  `ck:top:<kind>:cost_micros:<YYYY-MM>`    by cost and by tokens
--   +8  `ck:top:<kind>:tokens:<YYYY-MM-DD>`
--   +9  `ck:top:<kind>:tokens:<YYYY-MM>`
-- KEYS[#KEYS-h+1..]  the h count hashes the chunk's records add to: the MCP records'
--                (see "MCP"), `ck:mcp:{<user>}:<YYYY-MM-DD>` and `ck:mcp:{*}:<YYYY-MM-DD>`,
--                and the client tools' (see "Client tools"), `ck:clients:<YYYY-MM-DD>`
-- ARGV[1]   dedupe window in seconds (integer >= 1): how long a marker lives
-- ARGV[2]   approximate cap on the audit stream's length (XADD MAXLEN ~), >= 1; or 0
--           when the audit stream is off (`--usage-audit-stream off`): nothing is logged
--           or trimmed, KEYS[1] is left untouched, and each record's JSON and day
--           (below) are sent empty
-- ARGV[3]   approximate cap on the audit stream's age, ms (XTRIM MINID ~, once per
--           call, by Redis's clock; see windows.lua, stream_trim_age)
-- ARGV[4]   now, ms since the epoch (the service's clock): rolling windows book here
-- ARGV[5]   n, the number of records
-- ARGV[6]   h, the number of count hashes
-- ARGV[7]   f, the number of ledger fields
-- ARGV[8]   '' for the layout above; in a Redis Cluster, the shape of one slot's share
--           of the chunk (see "Cluster")
-- ARGV[9..8+f] the ledger fields' names
-- ARGV[9+f..8+f+g]   each group's id: its member in the rankings
-- then `1` when per-group sums follow, `0` when not: for each group, in order, f sums
--   (one per ledger field), then tokens and cost: what the group's records add when
--   every one of them is booked, each sum in [0, 2^53]. Groups are numbered in order of
--   first use by the records, in order.
-- then per record, in KEYS order, three values:
--   the record as the filter sent it (JSON), for the audit stream
--   the UTC day it is booked on (YYYY-MM-DD), for the audit stream
--   its tokens (input + output), in [0, 2^53]
-- then per record, in KEYS order, its MCP counts: c (0 for a record that is no MCP
--   exchange), then c pairs: an MCP count hash's number (1..h) and a field to add 1 to;
--   then its client tool: 0 for none, else the tool's count hash number (1..h), the
--   tool's name and the record's cost in micro-dollars, in [0, 2^53]
-- then `1` when each record's amounts follow, `0` when not (the service leaves them out
--   when it sent the sums, and sends them only when the script asks), and then per
--   record, in KEYS order, what it adds:
--   its cost in micro-dollars, in [0, 2^53]
--   f increments, one per ledger field in ARGV[7..] order, integers in [0, 2^53]
--   m, the number of its scopes, then m group numbers (1..g) in scope order
-- Every count, number and amount above is sent as plain decimal digits (a `-` only where
-- a range allows negatives), which the script may convert by arithmetic rather than
-- tonumber (one string-to-number conversion instead of two).
-- When every record is booked (no duplicate, the usual case) and the sums were sent,
-- the script reads the sums and never the per-record amounts: most of a chunk's Lua time
-- went into turning those strings into numbers and adding them up (and Redis turns every
-- argument into a Lua string before the script starts, so amounts not needed are not sent).
--
-- Returns one integer per record: 1 when it was booked, 0 when its request id was booked
-- before within the dedupe window (a retried batch) or earlier in this chunk. Returns the
-- string `details`, having written nothing, when the amounts are needed (a duplicate, or
-- no sums) and were not sent: the service then sends the chunk again with them.
--
-- Rate windows: the actual tokens replace the reserved ones only while the window the
-- request was counted in is still the scope's current one. Once that window has ended
-- its count no longer matters; the reservation (a worst case) stood in for the request.
-- Usage without a reservation record (never authorized, as in fail-open mode, or
-- committed after the record's lifetime) changes no rate window. Two records naming the
-- same reservation (a reused reservation id) commit it once: the first one.
--
-- Every check, for every record of the chunk, runs before the first write. Redis does
-- not undo a script's earlier writes when a later command fails, so a failure halfway
-- would leave records part-booked and, had their markers been set, their retries
-- skipped as duplicates: the ledger would stay wrong for good. Failing before any write
-- leaves nothing behind; the service then books the chunk's records one call each, so
-- only the record that cannot be booked fails, and the filter retries it. (Under
-- maxmemory, Redis refuses only a script's first write, so an out-of-memory refusal also
-- leaves nothing behind.) Every key written is checked for its type, and every limit set
-- read, before the first write.
--
-- MCP: a record of an MCP exchange names no scope group (its tokens and cost are zero,
-- and it takes no user's, tenant's or model's ledger); it adds 1 to fields of its user's
-- and everyone's count hash of its booking day: `requests:mcp_server:<server>` and
-- `requests:mcp_tool:<server>/<tool>` (a tool call), and `errors:...` of the same when it
-- failed. Booked or duplicate exactly as any record; its reservation and rate windows
-- are settled as any record's.
--
-- Client tools: a record that names its calling tool adds 1 to `requests:<tool>`, its
-- tokens to `tokens:<tool>` and its cost to `cost_micros:<tool>` of the tools' hash of
-- its booking day, once per request id like every record. The tool is the client's
-- choice, so a day's hash takes at most MAX_TOOLS tools (their three fields each, as
-- HLEN / 3 counts them): a tool it does not hold yet, once it is full, is counted as
-- `other`, which is always taken.
--
-- Cluster: one record's keys carry different hash tags (user, tenant, model, the
-- reservation records' scopes, the audit stream, ...) and so live in different slots
-- of a Redis Cluster. There the service splits a chunk by hash tag and calls this
-- script once per tag with the records that touch it (store/sharded_usage.rs), and
-- ARGV[8] is a JSON object giving the call's shape:
--   audit     1 when KEYS[1] is the audit stream (the call that logs every record),
--             0 when there is no KEYS[1] and nothing is logged
--   resv      per record, how many reservation records follow its marker (0 or more:
--             its request's per-scope records in this slot)
--   defaults  per group, its kind's default limit set as the service read it (the
--             hash's fields): groups then have five keys, +1 to +5 as above with +4
--             naming +3 again, and no rankings (the service ranks from the ledger)
-- Each record's marker is then this slot's, `ck:usage:seen:{<tag>}:<request_id>`, so
-- every call books a record at most once on its own, and a retried chunk repeats only
-- the calls that had not run.

local GROUP = 9
local MAX_TOOLS = 64
local dedupe_secs, max_len, max_age_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local n, count_hashes, field_count = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local fields = {}
for f = 1, field_count do
  fields[f] = ARGV[8 + f]
end

-- The call's shape: the documented layout, or one slot's share (see "Cluster").
local audit, group_size, resv_counts, sent_defaults = true, GROUP, nil, nil
if ARGV[8] ~= '' then
  local ok, shape = pcall(cjson.decode, ARGV[8])
  if not ok or type(shape) ~= 'table' or type(shape.resv) ~= 'table' or #shape.resv ~= n
      or type(shape.defaults) ~= 'table' then
    fail('ARGV[8] is not the shape of a slot call')
  end
  audit, group_size = shape.audit == 1, 5
  resv_counts, sent_defaults = shape.resv, shape.defaults
end
local log
local k_at = 1
if audit then
  log = KEYS[1]
  k_at = 2
end
-- Whether records are logged: the stream's key stays in KEYS either way (in a cluster
-- the call keyed by it is the one that books a record whole).
local logged = audit and max_len ~= '0'
-- One table per record and none inside it: its reservation records and MCP counts are
-- ranges of KEYS and ARGV, its client tool plain fields. Lua's allocations (and the
-- collector that frees them) were a good part of a record's cost.
local records = {}
for r = 1, n do
  local c = resv_counts and tonumber(resv_counts[r]) or 1
  records[r] = {seen = KEYS[k_at], resv_at = k_at + 1, resv_n = c}
  k_at = k_at + 1 + c
end
local groups_at = k_at - 1
local group_count = (#KEYS - groups_at - count_hashes) / group_size
if sent_defaults and #sent_defaults ~= group_count then
  fail('ARGV[8] sends ' .. #sent_defaults .. ' default sets for ' .. group_count .. ' groups')
end

-- The keys of group g are KEYS[group_key(g) + 1 .. + group_size]; its id is ARGV[ids + g].
local function group_key(g)
  return groups_at + (g - 1) * group_size
end
local ids = 8 + field_count

local a = ids + group_count + 1
local summed = ARGV[a] == '1'
local sums_at = a + 1
if summed then
  a = sums_at + group_count * (field_count + 2)
else
  a = sums_at
end
for r = 1, n do
  local record, at = records[r], a + 3 * (r - 1)
  record.json, record.day, record.tokens_text = ARGV[at], ARGV[at + 1], ARGV[at + 2]
end
a = a + 3 * n
local counts_at = #KEYS - count_hashes
for r = 1, n do
  local record = records[r]
  -- Counts of 0 (no MCP exchange, no tool) are the usual case; a string compare is
  -- cheaper than tonumber's two string-to-number conversions.
  local c = ARGV[a] == '0' and 0 or tonumber(ARGV[a])
  record.counts_at, record.counts_n = a, c
  a = a + 1 + 2 * c
  if ARGV[a] ~= '0' then
    record.tool_key, record.tool_name = KEYS[counts_at + ARGV[a]], ARGV[a + 1]
    record.tool_cost = ARGV[a + 2] + 0
    a = a + 3
  else
    a = a + 1
  end
end
local has_details = ARGV[a] == '1'
local details_at = a + 1

-- Each record's cost, increments and groups, for when the sums cannot stand in.
local function read_details()
  local d = details_at
  for _, record in ipairs(records) do
    record.cost = tonumber(ARGV[d])
    record.increments, record.groups = {}, {}
    for f = 1, field_count do
      record.increments[f] = tonumber(ARGV[d + f])
    end
    d = d + 1 + field_count
    for j = 1, tonumber(ARGV[d]) do
      record.groups[j] = tonumber(ARGV[d + j])
    end
    d = d + 1 + #record.groups
  end
end

-- Duplicates first, as one call per record would find them: a marker from an earlier
-- batch, or an earlier record of this chunk.
-- One MGET for the chunk's markers rather than an EXISTS each: the per-call overhead
-- of redis.call was a good part of a record's cost.
local seen_keys = {}
for r, record in ipairs(records) do seen_keys[r] = record.seen end
local present = redis.call('MGET', unpack(seen_keys))
local result, booked, marked = {}, {}, {}
for r, record in ipairs(records) do
  if marked[record.seen] or present[r] then
    result[r] = 0
  else
    result[r] = 1
    marked[record.seen] = true
    booked[#booked + 1] = record
  end
end
if #booked == 0 then
  return result
end
if not (summed and #booked == n) and not has_details then
  return 'details'
end

if logged then expect_type(log, 'stream') end

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

-- What the booked records add: first per scope group (records of one user share one),
-- then per key, as groups can share a key (a user's month ledger, on two days). Each
-- list keeps first-use order so the writes come in a fixed order.
local groups, group_order = {}, {}
if summed and #booked == n then
  for g = 1, group_count do
    local at = sums_at + (g - 1) * (field_count + 2)
    local group = {g = g, sums = {}, tokens = {tonumber(ARGV[at + field_count])},
                   cost = {tonumber(ARGV[at + field_count + 1])}}
    for f = 1, field_count do group.sums[f] = {tonumber(ARGV[at + f - 1])} end
    group_order[g] = group
  end
else
  read_details()
  for _, record in ipairs(booked) do
    for _, g in ipairs(record.groups) do
      local group = groups[g]
      if not group then
        group = {g = g, sums = {}, tokens = {}, cost = {}}
        for f = 1, field_count do group.sums[f] = {} end
        groups[g] = group
        group_order[#group_order + 1] = group
      end
      for f = 1, field_count do parts_add(group.sums[f], record.increments[f]) end
      parts_add(group.tokens, tonumber(record.tokens_text))
      parts_add(group.cost, record.cost)
    end
  end
end

local function merge(into, parts)
  for _, part in ipairs(parts) do parts_add(into, part) end
end

local ledgers, ledger_order = {}, {}
local rolls, roll_order = {}, {}
local rankings, ranking_order = {}, {}
local limit_sets = {}

local function limits(key)
  if not limit_sets[key] then limit_sets[key] = read_limits(key) end
  return limit_sets[key]
end

-- A group's kind's default set: read, or as the service sent it (see "Cluster").
local function default_limits(g, key)
  if not sent_defaults then return limits(key) end
  local fields = sent_defaults[g]
  if type(fields) ~= 'table' then fail('ARGV[8] sends no default set for group ' .. g) end
  local label = 'the default set of group ' .. g
  if not limit_sets[label] then limit_sets[label] = sent_limits(label, fields) end
  return limit_sets[label]
end

local function entry(map, order, id, fresh)
  local e = map[id]
  if not e then
    e = fresh()
    map[id] = e
    order[#order + 1] = e
  end
  return e
end

for _, group in ipairs(group_order) do
  local k = group_key(group.g)
  for _, key in ipairs({KEYS[k + 1], KEYS[k + 2]}) do
    local l = entry(ledgers, ledger_order, key, function()
      local fresh = {key = key, sums = {}}
      for f = 1, field_count do fresh.sums[f] = {} end
      return fresh
    end)
    for f = 1, field_count do merge(l.sums[f], group.sums[f]) end
  end
  local e = effective(limits(KEYS[k + 3]), default_limits(group.g, KEYS[k + 4]), nil)
  if e.budget and e.budget.period.kind == 'rolling' then
    local key = KEYS[k + 5]
    expect_type(key, 'hash')
    -- One call per record would skip records with no spend; adding nothing is the same.
    if parts_total(group.tokens) > 0 or parts_total(group.cost) > 0 then
      local roll = entry(rolls, roll_order, key, function()
        return {key = key, window_ms = e.budget.period.window_ms, tokens = {}, cost = {}}
      end)
      merge(roll.tokens, group.tokens)
      merge(roll.cost, group.cost)
    end
  end
  local id = ARGV[ids + group.g]
  local ranked_amounts = {group.cost, group.cost, group.tokens, group.tokens}
  if group_size < GROUP then ranked_amounts = {} end
  for r, amounts in ipairs(ranked_amounts) do
    local key = KEYS[k + 5 + r]
    expect_type(key, 'zset')
    local ranked = entry(rankings, ranking_order, key .. '\0' .. id, function()
      return {key = key, member = id, parts = {}}
    end)
    merge(ranked.parts, amounts)
  end
end

-- Each ledger hash is read once for the saturation check, and each field's new total
-- computed here when that is exact (under 2^53 either way), so one HSET writes the hash.
-- Increments are never negative, so a total that ends under the cap never passed it on
-- the way, as one call per record would have checked.
for _, l in ipairs(ledger_order) do
  -- HMGET raises WRONGTYPE on a key that is not a hash, still before any write.
  local current = redis.call('HMGET', l.key, unpack(fields))
  l.set, l.add = {}, {}
  for f = 1, field_count do
    local total = current[f]
    if total and not integer(total) then
      return redis.error_reply('ERR ' .. l.key .. ' ' .. fields[f] .. ' is not an integer')
    end
    local parts = l.sums[f]
    local before = tonumber(total or '0')
    local after = before + parts_total(parts)
    if after > SAFE_TOTAL then
      l.set[#l.set + 1] = fields[f]
      l.set[#l.set + 1] = INT64_MAX
    elseif #parts <= 1 and math.abs(before) < MAX_COUNT and math.abs(after) < MAX_COUNT then
      l.set[#l.set + 1] = fields[f]
      l.set[#l.set + 1] = int(after)
    else
      for _, part in ipairs(parts) do
        l.add[#l.add + 1] = {fields[f], int(part)}
      end
    end
  end
end

-- A booked record's tokens as a number, converted once.
local function tokens_of(record)
  local t = record.tokens
  if not t then
    -- The service sends digits only (see ARGV): arithmetic converts once, tonumber twice.
    t = record.tokens_text + 0
    record.tokens = t
  end
  return t
end

-- The MCP and client tool counts, summed per hash and field (no closure or string
-- built per record: both allocate).
local counts, count_order = {}, {}
local function count_entry(key, field)
  local by_field = counts[key]
  if not by_field then
    expect_type(key, 'hash')
    by_field = {}
    counts[key] = by_field
  end
  local c = by_field[field]
  if not c then
    c = {key = key, field = field, parts = {}}
    by_field[field] = c
    count_order[#count_order + 1] = c
  end
  return c
end
-- Per tools' hash: how many tools it holds, and each tool of the chunk's three count
-- entries, under the name it counts as.
local tool_hashes = {}
local function tool_entries(key, name)
  local held = tool_hashes[key]
  if not held then
    expect_type(key, 'hash')
    held = {n = math.floor(redis.call('HLEN', key) / 3), names = {}}
    tool_hashes[key] = held
  end
  local entries = held.names[name]
  if not entries then
    local as = name
    if name == 'other' or redis.call('HEXISTS', key, 'requests:' .. name) == 1 then
      as = name
    elseif held.n < MAX_TOOLS then
      held.n = held.n + 1
    else
      as = 'other'
    end
    entries = {count_entry(key, 'requests:' .. as), count_entry(key, 'tokens:' .. as),
               count_entry(key, 'cost_micros:' .. as)}
    held.names[name] = entries
  end
  return entries
end
for _, record in ipairs(booked) do
  local at = record.counts_at
  for c = 1, record.counts_n do
    local key = KEYS[counts_at + tonumber(ARGV[at + 2 * c - 1])]
    parts_add(count_entry(key, ARGV[at + 2 * c]).parts, 1)
  end
  if record.tool_key then
    local entries = tool_entries(record.tool_key, record.tool_name)
    parts_add(entries[1].parts, 1)
    parts_add(entries[2].parts, tokens_of(record))
    parts_add(entries[3].parts, record.tool_cost)
  end
end
for _, c in ipairs(count_order) do
  local current = redis.call('HGET', c.key, c.field)
  if current and not integer(current) then
    return redis.error_reply('ERR ' .. c.key .. ' ' .. c.field .. ' is not an integer')
  end
end

-- The reservation records, written by authorize.lua. One it cannot read is left to
-- expire, and so is its reservation. A record claimed by an earlier record of the chunk
-- is, for a later one, already deleted.
local claimed, deleted = {}, {}
for _, record in ipairs(booked) do
  -- Most records have one reservation record: `held` is then that record, not a list.
  for i = record.resv_at, record.resv_at + record.resv_n - 1 do
    local reservation = KEYS[i]
    if not claimed[reservation] then
      claimed[reservation] = true
      deleted[#deleted + 1] = reservation
      local held = resv_record_read(reservation)
      if held.member then
        if record.held then
          if not record.held_list then record.held_list = {record.held} end
          record.held_list[#record.held_list + 1] = held
        else
          record.held = held
        end
      end
    end
  end
end

for _, record in ipairs(booked) do
  if logged then
    redis.call('XADD', log, 'MAXLEN', '~', max_len, '*', 'record', record.json,
      'day', record.day)
  end
  redis.call('SET', record.seen, '1', 'NX', 'EX', dedupe_secs)
end
if logged then stream_trim_age(log, max_age_ms) end
for _, l in ipairs(ledger_order) do
  if #l.set > 0 then redis.call('HSET', l.key, unpack(l.set)) end
  for _, step in ipairs(l.add) do
    redis.call('HINCRBY', l.key, step[1], step[2])
  end
end
for _, c in ipairs(count_order) do
  for _, part in ipairs(c.parts) do
    redis.call('HINCRBY', c.key, c.field, int(part))
  end
end
local releases, fixes = resv_releases(), rate_fixes()
local function settle(record, held)
  for _, pair in ipairs(held.releases) do
    resv_release(releases, pair[1], pair[2], held.member)
  end
  for _, pair in ipairs(held.rates) do
    local w = rate_fix(fixes, pair[1], pair[2])
    if w then
      w.tokens = math.max(0, w.tokens - held.tokens + tokens_of(record))
      w.changed.tokens = true
    end
  end
end
for _, record in ipairs(booked) do
  if record.held_list then
    for _, held in ipairs(record.held_list) do settle(record, held) end
  elseif record.held then
    settle(record, record.held)
  end
end
resv_releases_finish(releases)
rate_fixes_finish(fixes)
if #deleted > 0 then redis.call('DEL', unpack(deleted)) end
for _, roll in ipairs(roll_order) do
  local w = roll_open(roll.key, roll.window_ms, now)
  for i = 1, math.max(#roll.tokens, #roll.cost) do
    roll_add(w, roll.tokens[i] or 0, roll.cost[i] or 0)
  end
end
for _, ranked in ipairs(ranking_order) do
  for _, part in ipairs(ranked.parts) do
    -- One call per record adds only amounts above zero.
    if part > 0 then redis.call('ZINCRBY', ranked.key, int(part), ranked.member) end
  end
end
return result
