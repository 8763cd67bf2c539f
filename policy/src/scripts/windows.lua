-- windows.lua: helpers shared by authorize.lua, record_usage.lua, release.lua and
-- dead_letter.lua. The service sends this file and the script as one body (see
-- store/mod.rs), so it has no KEYS or ARGV of its own. It documents the layouts the
-- scripts share:
--
-- Limit set, `ck:limits:<kind>:{<id>}` (hash; `<id>` `*` is the kind's default set):
--   rpm, tpm, usd_micros, tokens   integers in [0, 2^53], each optional
--   period                         `day`, `month` or `rolling:<secs>`; set iff a budget is
--   updated_ms                     when an operator last wrote it (not read here)
-- Each of rpm, tpm and the budget (usd_micros and tokens with their period) comes from
-- the scope's own set when it has it, else from the server's set for an MCP tool
-- (`mcp_tool:<server>/*`), else from the kind's default set, else (rpm only) from the
-- service's fallback (its --requests-per-window, for users). The MCP kinds
-- (`mcp_server`, `mcp_tool`) hold rpm only, and their ids in every key but the limit
-- sets' are `<user>:<id>`: each user has windows of their own.
--
-- Rate window, `ck:rate:<kind>:{<id>}` (hash): start (ms), requests, tokens. A window
-- starts with the first request after the previous one ended and lasts the configured
-- window, so a client hammering a full window does not push its reset away. The key's
-- TTL (two windows) only collects garbage; `start` decides. Also held, held_tokens and
-- held_until (see "Held" below).
--
-- Reservations: `ck:resv:z:<kind>:{<id>}` (sorted set) holds one member per live
-- reservation, `<tokens>:<cost_micros>:<request_id>`, scored by its expiry (ms);
-- `ck:resv:sum:<kind>:{<id>}` (hash: tokens, cost_micros) holds their totals. A member
-- leaves the set exactly once, by commit (ZREM) or by expiring (sweep), and only the
-- one that removed it subtracts it from the totals. Also held_tokens, held_cost and
-- held_until (see "Held").
--
-- Held: what spare lease slots granted in a scope count for (requests, tokens, cost),
-- and until when (ms) the filters holding them give unused ones back at the latest.
-- Advisory only, never part of a decision: a denial that the held amounts alone cause
-- (it would pass without them) says to retry when they are back, instead of at the
-- window's or budget's reset. Amounts add up while any hold is live and start again
-- once the last one has passed; slots used meanwhile still count as held, so such a
-- denial may come again at the retry, with the real reset then.
--
-- Rolling spend, `ck:roll:<kind>:{<id>}` (hash): window_ms, bucket_ms, oldest and
-- newest bucket index, live totals tokens and cost_micros, and per bucket `t<i>` and
-- `c<i>`. A window of W ms has ROLL_SPAN buckets of ceil(W / ROLL_SPAN) ms plus the
-- current one, so spend counts for between W and W * (1 + 1/ROLL_SPAN): never less than
-- the window, which keeps the budget a hard bound. Changing W starts the window afresh.
--
-- Streams, `ck:usage:log` (booked records) and `ck:usage:dead` (refused ones): each
-- capped by length (XADD MAXLEN ~) and by age (stream_trim_age), both approximate:
-- Redis drops whole macro nodes (100 entries by default), never part of one.
--
-- Numbers are Lua doubles: exact to 2^53, which the service's validation keeps every
-- limit, reservation and usage count under.

local MAX_COUNT = 9007199254740992 -- 2^53
local ROLL_SPAN = 60

-- A number a script may return: Redis truncates a Lua number to a 64-bit integer, and
-- a saturated ledger total (2^63 - 1 as a double) would not survive that.
local function out(n)
  if n > MAX_COUNT then return MAX_COUNT end
  if n < 0 then return 0 end
  return math.floor(n)
end

-- A whole number as Redis reads one. Lua would send -0 as "-0", which HINCRBY refuses,
-- and prints large doubles in exponent form.
local function int(n)
  return string.format('%d', n)
end

local function fail(message)
  error(redis.error_reply('ERR ' .. message))
end

local function int_field(key, field, value)
  if not value then return nil end
  local n = tonumber(value)
  if n == nil or n < 0 or n > MAX_COUNT or n ~= math.floor(n) then
    fail(key .. ' ' .. field .. ' is not a limit: ' .. value)
  end
  return n
end

local LIMIT_FIELDS = {'rpm', 'tpm', 'usd_micros', 'tokens', 'period'}

-- A limit set from its fields' values in LIMIT_FIELDS order; `key` names it in errors.
local function limits_of(key, v)
  local set = {
    rpm = int_field(key, 'rpm', v[1]),
    tpm = int_field(key, 'tpm', v[2]),
    usd = int_field(key, 'usd_micros', v[3]),
    tokens = int_field(key, 'tokens', v[4]),
  }
  if set.usd or set.tokens then
    local text = v[5]
    if text == 'day' or text == 'month' then
      set.period = {kind = text, text = text}
    else
      local secs = text and string.match(text, '^rolling:([1-9]%d*)$')
      if not secs then fail(key .. ' has a budget without a valid period') end
      set.period = {kind = 'rolling', text = text, window_ms = tonumber(secs) * 1000}
    end
  end
  return set
end

local function read_limits(key)
  return limits_of(key, redis.call('HMGET', key, unpack(LIMIT_FIELDS)))
end

-- A limit set the service read and sent (in a Redis Cluster, the kinds' default sets
-- and the MCP servers' sets live in other slots than the scope's keys, so a script
-- cannot read them): the hash's fields as HGETALL returned them, decoded from JSON.
-- Checked exactly as a set read here is.
local function sent_limits(key, fields)
  local v = {}
  for i, field in ipairs(LIMIT_FIELDS) do
    local value = fields[field]
    if value ~= nil and type(value) ~= 'string' then
      fail('the limit set sent for ' .. key .. ' has a non-string ' .. field)
    end
    v[i] = value
  end
  return limits_of(key, v)
end

-- Sources, as returned to the service: 0 the scope's own set, 1 the kind's default,
-- 2 the service's fallback, 3 the server's set (`server`, for an MCP tool; nil for
-- every other scope).
local function effective(own, default, fallback_rpm, server)
  local e = {}
  server = server or {}
  if own.rpm then e.rpm, e.rpm_src = own.rpm, 0
  elseif server.rpm then e.rpm, e.rpm_src = server.rpm, 3
  elseif default.rpm then e.rpm, e.rpm_src = default.rpm, 1
  elseif fallback_rpm then e.rpm, e.rpm_src = fallback_rpm, 2 end
  if own.tpm then e.tpm, e.tpm_src = own.tpm, 0
  elseif server.tpm then e.tpm, e.tpm_src = server.tpm, 3
  elseif default.tpm then e.tpm, e.tpm_src = default.tpm, 1 end
  if own.period then e.budget, e.budget_src = own, 0
  elseif server.period then e.budget, e.budget_src = server, 3
  elseif default.period then e.budget, e.budget_src = default, 1 end
  return e
end

-- Types seen by this call, so a key many records share is asked about once. Sound
-- because callers check every key before their first write, and their writes only
-- delete keys or give them the type checked.
local key_types = {}

-- Returns the key's type ('none' when it does not exist).
local function expect_type(key, wanted)
  local t = key_types[key]
  if not t then
    t = redis.call('TYPE', key)['ok']
    key_types[key] = t
  end
  if t ~= 'none' and t ~= wanted then
    fail(key .. ' holds a ' .. t .. ', not a ' .. wanted)
  end
  return t
end

-- Exact sums: a double holds every integer only up to 2^53, so a sum that would pass
-- it starts a new part, and each part is written on its own. Amounts are integers in
-- [0, 2^53]; in practice a sum is one part.
local function parts_add(parts, n)
  local last = #parts
  if last > 0 and parts[last] + n <= MAX_COUNT then
    parts[last] = parts[last] + n
  else
    parts[last + 1] = n
  end
end

local function parts_total(parts)
  local t = 0
  for _, part in ipairs(parts) do t = t + part end
  return t
end

-- Rate windows ------------------------------------------------------------------

-- Held amounts of a hash (see "Held"): all zero once the hold has passed.
local function held_read(until_ms, fields, now)
  local h = {until_ms = tonumber(until_ms) or 0}
  for name, value in pairs(fields) do
    h[name] = (h.until_ms > now) and (tonumber(value) or 0) or 0
  end
  return h
end

-- Adds to a hash's held amounts (`amounts`: field name -> amount) and extends the hold.
local function held_add(key, held, amounts, until_ms)
  local args = {'held_until', int(math.max(held.until_ms, until_ms))}
  for field, amount in pairs(amounts) do
    args[#args + 1] = field
    args[#args + 1] = int((held[field] or 0) + amount)
  end
  redis.call('HSET', key, unpack(args))
end

local function rate_open(key, window_ms, now)
  local v = redis.call('HMGET', key, 'start', 'requests', 'tokens', 'held', 'held_tokens',
    'held_until')
  local start = tonumber(v[1])
  -- A start far in the future came from a clock that has since been corrected.
  if start == nil or now >= start + window_ms or start > now + window_ms then
    return {key = key, start = now, requests = 0, tokens = 0, fresh = true,
            held = held_read(0, {held = 0, held_tokens = 0}, now)}
  end
  return {key = key, start = start, requests = tonumber(v[2]) or 0,
          tokens = tonumber(v[3]) or 0, fresh = false,
          held = held_read(v[6], {held = v[4], held_tokens = v[5]}, now)}
end

local function rate_reset_after(r, window_ms, now)
  return math.max(1, math.min(window_ms, r.start + window_ms - now))
end

-- Counts n requests of `tokens` each (a lease's slots in one step).
local function rate_take(r, window_ms, tokens, n)
  if tokens * n > MAX_COUNT then
    -- Past 2^53 a double's product is no longer exact; Redis adds exactly.
    for _ = 1, n do rate_take(r, window_ms, tokens, 1) end
    return
  end
  if r.fresh then
    -- A new window: what the last one held no longer counts in it.
    redis.call('HSET', r.key, 'start', int(r.start), 'requests', n, 'tokens', int(tokens * n),
      'held', 0, 'held_tokens', 0, 'held_until', 0)
    redis.call('PEXPIRE', r.key, int(2 * window_ms))
    r.fresh = false
  else
    redis.call('HINCRBY', r.key, 'requests', n)
    redis.call('HINCRBY', r.key, 'tokens', int(tokens * n))
  end
  r.requests = r.requests + n
  r.tokens = r.tokens + tokens * n
end

-- Reservations ------------------------------------------------------------------

local function sum_add(key, tokens, cost)
  local t = redis.call('HINCRBY', key, 'tokens', int(tokens))
  local c = redis.call('HINCRBY', key, 'cost_micros', int(cost))
  -- Only a hand edit could take a total below zero; never let one hand out budget.
  if t < 0 then redis.call('HSET', key, 'tokens', 0) end
  if c < 0 then redis.call('HSET', key, 'cost_micros', 0) end
end

local function member_amounts(member)
  local t, c = string.match(member, '^(%d+):(%d+):')
  if not t then return 0, 0 end
  -- Digits only, so arithmetic's conversion (one string-to-number each; tonumber takes
  -- two) cannot fail.
  return t + 0, c + 0
end

-- Drops expired reservations (at most 1000 per call; any left over keep counting until
-- the next call, which errs on the safe side) and returns the live totals and the held
-- amounts among them.
local function resv_sweep(zkey, skey, now)
  local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', int(now), 'LIMIT', 0, 1000)
  if #expired > 0 then
    local t, c = 0, 0
    for _, member in ipairs(expired) do
      local mt, mc = member_amounts(member)
      t, c = t + mt, c + mc
    end
    -- The same first #expired members in (score, member) order.
    redis.call('ZREMRANGEBYRANK', zkey, 0, #expired - 1)
    sum_add(skey, -t, -c)
  end
  local s = redis.call('HMGET', skey, 'tokens', 'cost_micros', 'held_tokens', 'held_cost',
    'held_until')
  return tonumber(s[1]) or 0, tonumber(s[2]) or 0,
    held_read(s[5], {held_tokens = s[3], held_cost = s[4]}, now)
end

-- Releases for many records at once: the members to release are collected per
-- reservations set, then each set is asked once which of them are still there (only
-- those are released by this call, as ZREM one at a time would say), they leave it in
-- one ZREM, and what left is taken off each totals hash in one step. Only subtractions
-- happen, so clamping a total at zero once gives what clamping after each would.
-- `spare`: the members are unused lease slots given back, so the held amounts drop too.
local function resv_releases(spare)
  return {sets = {}, set_order = {}, spare = spare}
end

local function resv_release(batch, zkey, skey, member)
  local id = zkey .. '\0' .. skey
  local set = batch.sets[id]
  if not set then
    set = {zkey = zkey, skey = skey, members = {}, named = {}}
    batch.sets[id] = set
    batch.set_order[#batch.set_order + 1] = set
  end
  if not set.named[member] then
    set.named[member] = true
    set.members[#set.members + 1] = member
  end
end

local function resv_releases_finish(batch)
  for _, set in ipairs(batch.set_order) do
    local scores = redis.call('ZMSCORE', set.zkey, unpack(set.members))
    local gone, tokens, cost = {}, {}, {}
    for i, member in ipairs(set.members) do
      if scores[i] then
        gone[#gone + 1] = member
        local t, c = member_amounts(member)
        parts_add(tokens, t)
        parts_add(cost, c)
      end
    end
    if #gone > 0 then
      redis.call('ZREM', set.zkey, unpack(gone))
      for i = 1, math.max(#tokens, #cost) do
        sum_add(set.skey, -(tokens[i] or 0), -(cost[i] or 0))
      end
      if batch.spare then
        local h = redis.call('HMGET', set.skey, 'held_tokens', 'held_cost')
        redis.call('HSET', set.skey,
          'held_tokens', int(math.max(0, (tonumber(h[1]) or 0) - parts_total(tokens))),
          'held_cost', int(math.max(0, (tonumber(h[2]) or 0) - parts_total(cost))))
      end
    end
  end
end

-- Reads a request's (or lease slot's) reservation record, written by authorize.lua:
-- whether it exists, its reserved tokens, its member, the [reservations, totals] pairs
-- it was reserved in and the [rate key, window start] pairs it was counted in. Every
-- key named is checked for its type, so callers can do all their checks before their
-- first write. A pair it cannot read is skipped (its reservation is left to expire).
local function resv_releases_of(list)
  local releases = {}
  for _, pair in ipairs(list) do
    if type(pair[1]) == 'string' and type(pair[2]) == 'string' then
      expect_type(pair[1], 'zset')
      expect_type(pair[2], 'hash')
      releases[#releases + 1] = pair
    end
  end
  return releases
end

local function resv_rates_of(list)
  local rates = {}
  for _, pair in ipairs(list) do
    local start = tonumber(pair[2])
    if type(pair[1]) == 'string' and start then
      expect_type(pair[1], 'hash')
      -- The start as a number once per distinct list, not once per record.
      rates[#rates + 1] = {pair[1], start}
    end
  end
  return rates
end

-- A record's key lists, decoded and checked once per call for each distinct text: the
-- slots of one lease (and one caller's requests in one window) carry the same lists.
-- The lists are only read afterwards, so records may share them.
local resv_lists = {}
local function resv_pairs(text, read)
  if not text then return {} end
  local seen = resv_lists[read]
  if not seen then
    seen = {}
    resv_lists[read] = seen
  end
  local cached = seen[text]
  if not cached then
    local ok, value = pcall(cjson.decode, text)
    cached = read((ok and type(value) == 'table') and value or {})
    seen[text] = cached
  end
  return cached
end

-- What a missing record holds: shared, as callers only read it (no allocation for each
-- record never authorized).
local NO_RESV_RECORD = {exists = false, tokens = 0, releases = {}, rates = {}}

local function resv_record_read(record)
  -- HMGET raises WRONGTYPE on a key that is not a hash, as a type check would. A record
  -- always has all these fields, so one with none of them is no record: it holds
  -- nothing to give back.
  local held = redis.call('HMGET', record, 't', 'm', 'z', 'r')
  if not (held[1] or held[2] or held[3] or held[4]) then
    return NO_RESV_RECORD
  end
  return {exists = true, tokens = tonumber(held[1]) or 0, member = held[2],
          releases = resv_pairs(held[3], resv_releases_of),
          rates = resv_pairs(held[4], resv_rates_of)}
end

-- Rate windows as commits and releases correct them: each read once per call, corrected
-- in Lua in the order of the records (so corrections compose exactly as one call per
-- record would), and written back once by rate_fixes_finish.
local function rate_fixes()
  return {order = {}, by_key = {}}
end

-- The window at `key` if it still starts at `start` (the one a request was counted in),
-- else nil: once that window has ended its count no longer matters.
local function rate_fix(fixes, key, start)
  local w = fixes.by_key[key]
  if not w then
    local v = redis.call('HMGET', key, 'start', 'requests', 'tokens', 'held', 'held_tokens')
    w = {key = key, start = tonumber(v[1]), requests = tonumber(v[2]) or 0,
         tokens = tonumber(v[3]) or 0, held = tonumber(v[4]) or 0,
         held_tokens = tonumber(v[5]) or 0, changed = {}}
    fixes.by_key[key] = w
    fixes.order[#fixes.order + 1] = w
  end
  -- `start` is a number (resv_rates_of converted it).
  if w.start ~= start then return nil end
  return w
end

local function rate_fixes_finish(fixes)
  for _, w in ipairs(fixes.order) do
    local args = {}
    for _, field in ipairs({'requests', 'tokens', 'held', 'held_tokens'}) do
      if w.changed[field] then
        args[#args + 1] = field
        args[#args + 1] = int(w[field])
      end
    end
    if #args > 0 then redis.call('HSET', w.key, unpack(args)) end
  end
end

-- Rolling windows ---------------------------------------------------------------

local function bucket_field(prefix, i)
  return prefix .. int(i)
end

-- Opens a rolling window at `now`, dropping buckets that left it.
local function roll_open(key, window_ms, now)
  local bucket_ms = math.floor((window_ms + ROLL_SPAN - 1) / ROLL_SPAN)
  local idx = math.floor(now / bucket_ms)
  local first = idx - ROLL_SPAN
  local w = {key = key, window_ms = window_ms, bucket_ms = bucket_ms, idx = idx,
             oldest = first, newest = first - 1, tokens = 0, cost = 0}
  local meta = redis.call('HMGET', key, 'window_ms', 'oldest', 'newest', 'tokens', 'cost_micros')
  if not meta[1] then return w end
  local oldest, newest = tonumber(meta[2]) or first, tonumber(meta[3]) or first
  -- A changed window length, a window with nothing live, or (after a clock jump) one
  -- too far behind to walk: start afresh.
  if tonumber(meta[1]) ~= window_ms or newest < first or first - oldest > 4 * ROLL_SPAN then
    redis.call('DEL', key)
    return w
  end
  local tokens, cost = tonumber(meta[4]) or 0, tonumber(meta[5]) or 0
  if oldest < first then
    local fields = {}
    for i = oldest, first - 1 do
      fields[#fields + 1] = bucket_field('t', i)
      fields[#fields + 1] = bucket_field('c', i)
    end
    local values = redis.call('HMGET', key, unpack(fields))
    for j = 1, #values, 2 do
      tokens = tokens - (tonumber(values[j]) or 0)
      cost = cost - (tonumber(values[j + 1]) or 0)
    end
    tokens, cost = math.max(0, tokens), math.max(0, cost)
    redis.call('HDEL', key, unpack(fields))
    redis.call('HSET', key, 'oldest', int(first), 'tokens', int(tokens), 'cost_micros', int(cost))
    oldest = first
  end
  w.oldest, w.newest, w.tokens, w.cost = oldest, newest, tokens, cost
  return w
end

local function roll_add(w, tokens, cost)
  -- A clock slightly behind the one that opened the window writes to its oldest bucket.
  local at = math.max(w.idx, w.oldest)
  redis.call('HINCRBY', w.key, bucket_field('t', at), int(tokens))
  redis.call('HINCRBY', w.key, bucket_field('c', at), int(cost))
  redis.call('HINCRBY', w.key, 'tokens', int(tokens))
  redis.call('HINCRBY', w.key, 'cost_micros', int(cost))
  redis.call('HSET', w.key, 'window_ms', int(w.window_ms), 'bucket_ms', int(w.bucket_ms),
    'oldest', int(w.oldest), 'newest', int(math.max(w.newest, at)))
  redis.call('PEXPIRE', w.key, int(w.window_ms + 2 * w.bucket_ms))
  w.newest = math.max(w.newest, at)
  w.tokens, w.cost = w.tokens + tokens, w.cost + cost
end

-- Milliseconds until at least `over` of the window's spend (prefix 't' tokens, 'c'
-- cost) has aged out; the whole window when it never will.
local function roll_reset_after(w, prefix, over, now)
  if over < 1 then over = 1 end
  if w.newest < w.oldest then return w.window_ms end
  local fields = {}
  for i = w.oldest, w.newest do fields[#fields + 1] = bucket_field(prefix, i) end
  local values = redis.call('HMGET', w.key, unpack(fields))
  local freed = 0
  for j = 1, #fields do
    freed = freed + (tonumber(values[j]) or 0)
    if freed >= over then
      -- Bucket i stops counting once the current bucket is i + ROLL_SPAN + 1.
      local i = w.oldest + j - 1
      return math.max(1, (i + ROLL_SPAN + 1) * w.bucket_ms - now)
    end
  end
  return w.window_ms
end

-- Streams -----------------------------------------------------------------------

-- Drops a stream's entries older than max_age_ms. Age is read on Redis's clock, the one
-- `*` ids come from, so a service clock that is off (or a test's) can never trim new
-- entries. `~` drops only whole macro nodes, which keeps it cheap when there is nothing
-- to drop, the usual case.
local function stream_trim_age(key, max_age_ms)
  local t = redis.call('TIME')
  local min_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - max_age_ms
  if min_ms > 0 then
    redis.call('XTRIM', key, 'MINID', '~', int(min_ms))
  end
end
