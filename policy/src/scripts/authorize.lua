-- authorize.lua: one authorization decision. Checks every limit that applies to the
-- request's scopes and, only if all of them pass, takes the request's share of each:
-- rate windows +1 request and +reserve_tokens, budgets a reservation of the request's
-- worst case. Sent after windows.lua, whose header documents the key layouts.
--
-- KEYS[1]   the request's reservation record, `ck:resv:req:{<request_id>}` (hash):
--           t, c (reserved tokens and cost), m (the reservations' member), z (JSON list
--           of [reservations key, totals key]), r (JSON list of [rate key, window start])
-- KEYS[2..] nine per scope, scopes in the order user, tenant, cost centre, model, or
--           for an MCP request its server and tool (whose ids below, but for the
--           limit sets', are `<user>:<id>`: each user's own windows):
--   +1  `ck:limits:<kind>:{<id>}`                 the scope's own limit set
--   +2  `ck:limits:<kind>:{*}`                    its kind's default set
--   +3  `ck:rate:<kind>:{<id>}`                   rate window
--   +4  `ck:resv:z:<kind>:{<id>}`                 live reservations
--   +5  `ck:resv:sum:<kind>:{<id>}`               their totals
--   +6  `ck:ledger:<kind>:{<id>}:<YYYY-MM-DD>`    today's committed spend (day budgets)
--   +7  `ck:ledger:<kind>:{<id>}:<YYYY-MM>`       this month's (month budgets)
--   +8  `ck:roll:<kind>:{<id>}`                   rolling-window spend
--   +9  `ck:limits:mcp_tool:{<server>/*}`         an MCP tool's server's set, read
--                                                 between +1 and +2; for every other
--                                                 scope +2 again (not read twice)
-- ARGV[1]   now, ms since the epoch (the service's clock; see clock.rs for why)
-- ARGV[2]   rate window, ms
-- ARGV[3]   reservation lifetime, ms
-- ARGV[4]   reserve_tokens: the request's worst-case tokens, in [0, 2^53]
-- ARGV[5]   reserve_cost_micros: its worst-case cost
-- ARGV[6]   1 to decide and take; 0 only to report the limits' state (nothing taken)
-- ARGV[7]   when today ends (ms), ARGV[8] when this month ends (ms), both UTC
-- ARGV[9]   the request id (names the reservation)
-- ARGV[10]  lease slots wanted, 0 or 1 for none (see "Leases" below)
-- ARGV[11]  within how many ms the filter gives a lease's unused slots back, 0 unknown
-- ARGV[12]  1 when the request is priced, 0 when the filter has no price for its model
--           (see "Unpriced" below)
-- ARGV[13..12+n] per scope (n scopes), the fallback rpm when no limit set has one, or
--           '' for none
-- ARGV[13+n], ARGV[14+n], ARGV[15+n], optional, sent in a Redis Cluster (see "Cluster"):
--           the limit sets of other slots as the service read them, a JSON array with
--           per scope an object {default, server, own}, each the hash's fields as an
--           object: `default` always (+2 is then not read), `server` for an MCP tool
--           with a server set (+9 is then not read), `own` for an MCP scope, whose own
--           set is keyed by its id and its windows by the user's (+1 is then not
--           read); a set not read names another key of the scope, to stay in its slot;
--           and the prefix and suffix that make a lease slot's id its record's key
--           (without them `ck:resv:req:{` and `}`)
--
-- Returns {allowed, slots, limit...}: slots is how many requests' worth was taken (1
-- without a lease, 0 when denied or only reporting); then one limit per check made, in
-- scope order, each
--   {scope, metric, period, limit, used, reserved, reset_after_ms, tripped, source}
--   scope      1-based scope index
--   metric     `rpm`, `tpm`, `usd_micros` or `tokens`
--   period     '' for rate limits, else the budget's `day`, `month` or `rolling:<secs>`
--   used       requests or tokens in the rate window, or committed spend in the budget
--              window; after taking, this request included
--   reserved   live reservations against the budget (this one included once taken)
--   tripped    1 if this limit denies the request, 2 if it is a dollar budget that
--              denies it because the request is unpriced
--   source     0 own set, 1 default set, 2 the service's fallback, 3 the server's set
--
-- A request needs max(reserve, 1) of each limit: a request that reserves nothing still
-- needs some room left, so a spent budget denies everything. A denied request takes
-- nothing. Expired reservations, rate windows that ended and rolling buckets that aged
-- out are cleared on the way, which changes no outcome.
--
-- If the request id already holds a reservation record (a repeated authorize), the
-- existing reservation stands for it and no second one is made; rate windows still
-- count the request.
--
-- Unpriced: a request whose model has no price (ARGV[12] = 0) would be booked at 0 µ$,
-- so it is denied (tripped 2) by every dollar budget that applies to it: each scope's
-- effective budget, resolved from its own set and its kind's default exactly as for
-- priced requests, that has a usd_micros amount. Token budgets and rate limits apply as
-- usual. Checked here, in the same atomic read of the limit sets as every other limit,
-- so a budget set between two reads cannot slip an unpriced request through. A denied
-- request takes nothing, whatever the reason: no reservation, no rate-window count,
-- no lease slot.
--
-- Cluster: in a Redis Cluster the service calls this script once per scope, so that
-- every key of a call is in the scope's hash slot, and adds up the answers itself (see
-- store/sharded_authorize.rs): KEYS[1] is then the scope's own reservation record,
-- `ck:resv:req:<kind>:{<id>}:<request_id>`, and lease slots' records are named alike.
--
-- Leases: with ARGV[10] = K >= 2, an allowed request may take up to K slots at once,
-- each an ordinary reservation of this request's worst case with its own record,
-- `<request_id>` for the first and `<request_id>.<i>` for the others, each counted in the
-- rate windows as a request. The filter spends the spare slots on this caller's next
-- requests without asking again, and releases the ones it did not use (release.lua).
-- Slots are sized so that no limit gives more than a quarter of what it has left to one
-- lease; when that is less than two requests' worth, no lease is given and decisions
-- are per request again, so a budget near its end is shared out exactly.
--
-- Spare slots count in full until used or given back, so a caller's leases (on other
-- models, other workers) can take a limit's last room while the caller has sent fewer
-- requests. Each limit keeps what its spare slots hold and until when (windows.lua,
-- "Held"); a denial that would pass without them reports, as its reset, when they are
-- back (ARGV[11] from the grant), not the window's or the budget's end.

local now = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local reserve_tokens = tonumber(ARGV[4])
local reserve_cost = tonumber(ARGV[5])
local take = ARGV[6] == '1'
local day_end, month_end = tonumber(ARGV[7]), tonumber(ARGV[8])
local request_id = ARGV[9]
local lease_return_ms = tonumber(ARGV[11]) or 0
local priced = ARGV[12] ~= '0'
local need_tokens = math.max(reserve_tokens, 1)
local need_cost = math.max(reserve_cost, 1)

local limits, plans = {}, {}
local allowed = true

local function check(entry, need)
  entry.tripped = entry.used + entry.reserved + need > entry.limit
  if entry.tripped then allowed = false end
  limits[#limits + 1] = entry
end

local scope_count = (#KEYS - 1) / 9
local sent_sets
if ARGV[13 + scope_count] then
  local ok, sets = pcall(cjson.decode, ARGV[13 + scope_count])
  if not ok or type(sets) ~= 'table' or #sets ~= scope_count then
    fail('the limit sets sent are not one {default, server, own} per scope')
  end
  sent_sets = sets
end
local slot_prefix = ARGV[14 + scope_count] or 'ck:resv:req:{'
local slot_suffix = ARGV[15 + scope_count] or '}'

for s = 1, scope_count do
  local k = 1 + (s - 1) * 9
  local default, server, own
  if sent_sets then
    local sent = sent_sets[s]
    if type(sent) ~= 'table' or type(sent.default) ~= 'table'
        or (sent.server ~= nil and type(sent.server) ~= 'table')
        or (sent.own ~= nil and type(sent.own) ~= 'table') then
      fail('the limit sets sent for scope ' .. s .. ' are not {default, server, own}')
    end
    default = sent_limits('the default set of scope ' .. s, sent.default)
    if sent.server then server = sent_limits('the server set of scope ' .. s, sent.server) end
    if sent.own then own = sent_limits('the own set of scope ' .. s, sent.own) end
  else
    default = read_limits(KEYS[k + 2])
    if KEYS[k + 9] ~= KEYS[k + 2] then server = read_limits(KEYS[k + 9]) end
  end
  own = own or read_limits(KEYS[k + 1])
  local e = effective(own, default, tonumber(ARGV[12 + s]), server)
  local plan = {}
  if e.rpm or e.tpm then
    local r = rate_open(KEYS[k + 3], window_ms, now)
    plan.rate = r
    local reset = rate_reset_after(r, window_ms, now)
    if e.rpm then
      check({scope = s, metric = 'rpm', period = '', limit = e.rpm, used = r.requests,
             reserved = 0, reset = reset, source = e.rpm_src, rate = r,
             held = r.held.held, held_until = r.held.until_ms, need = 1}, 1)
    end
    if e.tpm then
      check({scope = s, metric = 'tpm', period = '', limit = e.tpm, used = r.tokens,
             reserved = 0, reset = reset, source = e.tpm_src, rate = r,
             held = r.held.held_tokens, held_until = r.held.until_ms,
             need = need_tokens}, need_tokens)
    end
  end
  if e.budget then
    local b = e.budget
    local zkey, skey = KEYS[k + 4], KEYS[k + 5]
    local reserved_tokens, reserved_cost, held = resv_sweep(zkey, skey, now)
    local spent_tokens, spent_cost, reset, w
    if b.period.kind == 'rolling' then
      w = roll_open(KEYS[k + 8], b.period.window_ms, now)
      spent_tokens, spent_cost = w.tokens, w.cost
    else
      local ledger, ends = KEYS[k + 6], day_end
      if b.period.kind == 'month' then ledger, ends = KEYS[k + 7], month_end end
      local v = redis.call('HMGET', ledger, 'input_tokens', 'output_tokens', 'cost_micros')
      spent_tokens = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
      spent_cost = tonumber(v[3]) or 0
      reset = math.max(1, ends - now)
    end
    plan.budget = {zkey = zkey, skey = skey, held = held}
    if b.usd then
      check({scope = s, metric = 'usd_micros', period = b.period.text, limit = b.usd,
             used = spent_cost, reserved = reserved_cost, reset = reset,
             source = e.budget_src, roll = w, prefix = 'c', need = need_cost,
             budget = true, amount = reserve_cost, held = held.held_cost,
             held_until = held.until_ms}, need_cost)
      if not priced then
        local entry = limits[#limits]
        entry.tripped, entry.unpriced = true, true
        allowed = false
      end
    end
    if b.tokens then
      check({scope = s, metric = 'tokens', period = b.period.text, limit = b.tokens,
             used = spent_tokens, reserved = reserved_tokens, reset = reset,
             source = e.budget_src, roll = w, prefix = 't', need = need_tokens,
             budget = true, amount = reserve_tokens, held = held.held_tokens,
             held_until = held.until_ms}, need_tokens)
    end
  end
  plans[#plans + 1] = plan
end

-- Rolling budgets reset when enough spend has aged out: for a denial, enough to make
-- room for this request; otherwise, the first spend that will.
for _, entry in ipairs(limits) do
  if entry.roll then
    local over = 1
    if entry.tripped then
      over = entry.used + entry.reserved + entry.need - entry.limit
    end
    entry.reset = roll_reset_after(entry.roll, entry.prefix, over, now)
  end
end

-- A denial the held spare slots alone cause lifts when they are back.
for _, entry in ipairs(limits) do
  if entry.tripped and not entry.unpriced and entry.held > 0 and entry.held_until > now
      and entry.used + entry.reserved - entry.held + entry.need <= entry.limit then
    entry.reset = math.max(1, math.min(entry.reset, entry.held_until - now))
  end
end

local slots = 0
if allowed and take then
  local had_record = redis.call('EXISTS', KEYS[1]) == 1
  local reserve = (reserve_tokens > 0 or reserve_cost > 0) and not had_record
  slots = 1
  local wanted = tonumber(ARGV[10]) or 0
  if wanted >= 2 and not had_record then
    slots = wanted
    for _, entry in ipairs(limits) do
      local each = (entry.metric == 'rpm') and 1 or entry.need or need_tokens
      local room = entry.limit - entry.used - entry.reserved
      slots = math.min(slots, math.floor(room / (4 * each)))
    end
    if slots < 2 then slots = 1 end
  end
  local expires = int(now + ttl_ms)
  local lifetime = int(ttl_ms + window_ms)
  -- Every slot is reserved in the same scopes and counted in the same rate windows, so
  -- each reservations set gets one ZADD of all the slots' members, each totals hash one
  -- addition of all their amounts and each rate window one count of all the slots: the
  -- state one slot at a time would leave (these only grow here), in a few commands per
  -- scope instead of seven per slot and scope.
  local reserved_in, rates = {}, {}
  for _, plan in ipairs(plans) do
    if plan.rate then
      rates[#rates + 1] = {plan.rate.key, int(plan.rate.start)}
    end
    if plan.budget and reserve then
      reserved_in[#reserved_in + 1] = {plan.budget.zkey, plan.budget.skey}
    end
  end
  -- ZADD arguments, the same for every reservations set: score and member per slot.
  local members = {}
  local z, r = cjson.encode(reserved_in), cjson.encode(rates)
  local prefix = int(reserve_tokens) .. ':' .. int(reserve_cost) .. ':'
  for i = 1, slots do
    local id, record = request_id, KEYS[1]
    if i > 1 then
      id = request_id .. '.' .. i
      record = slot_prefix .. id .. slot_suffix
    end
    local member = prefix .. id
    members[#members + 1] = expires
    members[#members + 1] = member
    if (i > 1 or not had_record) and (#reserved_in > 0 or #rates > 0) then
      redis.call('HSET', record, 't', int(reserve_tokens), 'c', int(reserve_cost), 'm', member,
        'z', z, 'r', r)
      redis.call('PEXPIRE', record, lifetime)
    end
  end
  local spare = slots - 1
  local hold_until = now + lease_return_ms
  for _, plan in ipairs(plans) do
    if plan.rate then
      rate_take(plan.rate, window_ms, reserve_tokens, slots)
      if spare > 0 and lease_return_ms > 0 then
        held_add(plan.rate.key, plan.rate.held,
          {held = spare, held_tokens = spare * reserve_tokens}, hold_until)
      end
    end
    if plan.budget and reserve then
      redis.call('ZADD', plan.budget.zkey, unpack(members))
      if reserve_tokens * slots <= MAX_COUNT and reserve_cost * slots <= MAX_COUNT then
        sum_add(plan.budget.skey, reserve_tokens * slots, reserve_cost * slots)
      else
        -- Past 2^53 a double's product is no longer exact; Redis adds exactly.
        for _ = 1, slots do sum_add(plan.budget.skey, reserve_tokens, reserve_cost) end
      end
      if spare > 0 and lease_return_ms > 0 then
        held_add(plan.budget.skey, plan.budget.held,
          {held_tokens = spare * reserve_tokens, held_cost = spare * reserve_cost}, hold_until)
      end
      -- Garbage collection only: a set idle for a whole lifetime holds nothing live.
      redis.call('PEXPIRE', plan.budget.zkey, lifetime)
      redis.call('PEXPIRE', plan.budget.skey, lifetime)
    end
  end
  for _, entry in ipairs(limits) do
    if entry.rate then
      entry.used = (entry.metric == 'rpm') and entry.rate.requests or entry.rate.tokens
    elseif entry.budget and reserve then
      entry.reserved = entry.reserved + entry.amount * slots
    end
  end
end

local reply = {allowed and 1 or 0, slots}
for _, entry in ipairs(limits) do
  reply[#reply + 1] = {entry.scope, entry.metric, entry.period, out(entry.limit),
    out(entry.used), out(entry.reserved), out(entry.reset),
    entry.unpriced and 2 or (entry.tripped and 1 or 0), entry.source}
end
return reply
