"""The Lua scripts behind :class:`~mockserver.domain.redis_store.RedisStore`.

Redis runs a script as one atomic step: no other client's command interleaves with it, and
replication and the append-only file record its effects as one transaction. Every money
movement and every idempotency decision is therefore exactly one script call, and a grant
(claim its key, move the money, record the result) is one script: one round trip.

Numbers: Lua numbers are IEEE doubles, exact for integers up to 2^53 - 1. Balances move with
INCRBY/HINCRBY (64-bit integers inside Redis), every result is checked against ``MAX_SAFE``
before it is written, and integers are formatted with ``%.0f`` so that they never turn into
exponent notation. Running usage totals (see :mod:`.usage_index`) are kept by HINCRBY and
read back as text, so they stay exact past 2^53.

Time: a script that needs the time takes the caller's wall-clock seconds and a flag; with the
flag it adds the mock clock's offset, read from ``clock`` in the same step (the offset every
worker shares, see :mod:`.redis_clock`), so no separate round trip reads the clock. Times are
written with ``%.17g``, which reads back as exactly the same double in Python.

A ledger entry is one JSON array, ``[at, amount, before, after, id, kind, user, ...]``. The
script writes the first four fields (it alone knows the balances); Python encodes the rest
(``TAIL``, starting with a comma) so that any user id or description is escaped correctly.

Every script gets the same KEYS (see ``KEY_NAMES``) and the namespace prefix P as ARGV[1];
keys made per record or series are ``P .. 'idem:' .. member`` and ``P .. 'usage:' .. series``.
Layout: ``pool`` (string), ``users`` (hash), ``user_order`` (list: users as they appeared),
``ledger`` (list), ``meta`` (hash: initialised, last_at, run, idem_seq), ``idem`` (sorted set
of members by first-use sequence), ``idem:<member>`` (hash: fp, state = flight|done, exp,
owner, result fields), ``clock`` (the offset), ``usage_series`` (set of series names),
``usage_totals`` (hash of running totals), ``usage:<run>:<g | c:model>`` (sorted set by time
of ``<count>:<running totals>``).
"""

from __future__ import annotations

from .errors import MAX_SAFE_MICRODOLLARS, SCRIPT_ERRORS
from .usage import USAGE_WINDOW_SECONDS

# The namespace P every key of a mock's state starts with, unless configured otherwise.
DEFAULT_PREFIX = "quota-mock:"
KEY_NAMES = ("pool", "users", "user_order", "ledger", "meta", "idem", "clock", "usage_series", "usage_totals")

# A script names a failure by its error type's reply tag (``return {ERR.pool_too_low}``);
# the store raises that same type (errors.store_error), so codes and messages live only there.
_ERR_TABLE = "local ERR = {" + ", ".join(f"{e.reply} = '{e.reply}'" for e in SCRIPT_ERRORS) + "}"

# Shared helpers, prepended to every script.
_PRELUDE = (
    _ERR_TABLE
    + f"\nlocal MAX_SAFE = {MAX_SAFE_MICRODOLLARS}\nlocal WINDOW = {USAGE_WINDOW_SECONDS}"
    + r"""
local POOL, USERS, ORDER, LEDGER, META, IDEM, CLOCK, SERIES, TOTALS = unpack(KEYS)
local P = ARGV[1]
-- (0 is written '0': Redis reads '-0' as no integer at all.)
local function fmt(n) if n == 0 then return '0' end return string.format('%.0f', n) end
local function num(text) if text then return tonumber(text) end return 0 end
local function time_text(t) return string.format('%.17g', t) end

-- The time of this step: the caller's wall clock, plus the shared mock clock's offset.
local function now_from(wall, shared)
  local now = tonumber(wall)
  if shared == '1' then now = now + num(redis.call('GET', CLOCK)) end
  return now
end

-- Append an entry. Time going back (the clock was moved back) starts a new usage run;
-- returns the run the entry belongs to.
local function append(at, amount, before, after, tail)
  local meta = redis.call('HMGET', META, 'last_at', 'run')
  local run = meta[2] or '0'
  if meta[1] and tonumber(at) < tonumber(meta[1]) then run = tostring(redis.call('HINCRBY', META, 'run', 1)) end
  redis.call('HSET', META, 'last_at', at)
  redis.call('RPUSH', LEDGER, '[' .. at .. ',' .. fmt(amount) .. ',' .. fmt(before) .. ',' .. fmt(after) .. tail)
  return run
end

-- A new account joins the listing order.
local function user_before(user)
  local balance = redis.call('HGET', USERS, user)
  if not balance then redis.call('RPUSH', ORDER, user) return 0 end
  return tonumber(balance)
end

-- Add one entry of run ``run`` to a usage series (values: integer texts), keeping running
-- totals exact: HINCRBY counts in 64 bits; its reply is read as text again once past 2^53.
local function track(run, series, at, values)
  local name = run .. ':' .. series
  local count = redis.call('HINCRBY', TOTALS, name .. ':n', 1)
  if count == 1 then redis.call('SADD', SERIES, name) end
  local member = string.format('%015.0f', count)
  for i, value in ipairs(values) do
    local field = name .. ':' .. i
    local total = redis.call('HINCRBY', TOTALS, field, value)
    if math.abs(total) >= MAX_SAFE then total = redis.call('HGET', TOTALS, field) else total = fmt(total) end
    member = member .. ':' .. total
  end
  redis.call('ZADD', P .. 'usage:' .. name, at, member)
end

-- Forget records whose (mock) expiry has passed, oldest first, stopping at the first live
-- one: the same rule as the in-memory table. Records Redis already expired are gone too.
local function purge(now)
  while true do
    local oldest = redis.call('ZRANGE', IDEM, 0, 0)
    if #oldest == 0 then return end
    local exp = redis.call('HGET', P .. 'idem:' .. oldest[1], 'exp')
    if exp and tonumber(exp) > now then return end
    redis.call('DEL', P .. 'idem:' .. oldest[1])
    redis.call('ZREM', IDEM, oldest[1])
  end
end

-- Replay, refuse, or (nil) go ahead with a new key. Full: refuse, never forgetting a live
-- key early (its retry would be credited again), saying when the oldest expires.
local function check_key(rec, fingerprint, now, max_keys)
  purge(now)
  local found = redis.call('HMGET', rec, 'fp', 'state', 'user', 'amount', 'before', 'after', 'ledger_id')
  if found[1] then
    if found[1] ~= fingerprint then return {ERR.key_reused} end
    if found[2] ~= 'done' then return {ERR.key_in_flight} end
    return {'replay', found[3], found[4], found[5], found[6], found[7]}
  end
  if redis.call('ZCARD', IDEM) >= max_keys then
    local oldest = redis.call('ZRANGE', IDEM, 0, 0)
    local exp = num(redis.call('HGET', P .. 'idem:' .. oldest[1], 'exp'))
    return {ERR.keys_full, tostring(exp - now)}
  end
  return nil
end

-- A record's Redis TTL: the rest of its (mock-clock) lifetime.
local function expire_at(rec, exp, now)
  local ms = math.floor((exp - now) * 1000)
  if ms < 1 then ms = 1 end
  redis.call('PEXPIRE', rec, ms)
end
"""
)


def _script(body: str) -> str:
    return _PRELUDE + body


# ARGV: P, mode ('init' | 'load'), then per deposit 5 values: target ('pool' | 'user'),
# user id, amount, at, tail. 'init' loads only an uninitialised namespace: a restarted mock
# or a second worker keeps the state it finds. A load also returns the shared clock to real
# time (no offset), in this same step. Returns {'ok', 1} when it loaded, {'ok', 0} when it kept.
LOAD = _script(r"""
if ARGV[2] == 'init' and redis.call('HEXISTS', META, 'initialised') == 1 then return {'ok', 0} end
-- Check before the first write: Redis does not roll a failed script back.
for i = 3, #ARGV, 5 do
  local amount = tonumber(ARGV[i + 2])
  if not amount or amount < 0 or amount > MAX_SAFE then return {ERR.amount_too_large} end
end
local function delete_all(names, prefix)
  for i = 1, #names, 500 do
    local batch = {}
    for j = i, math.min(i + 499, #names) do batch[#batch + 1] = prefix .. names[j] end
    redis.call('DEL', unpack(batch))
  end
end
delete_all(redis.call('ZRANGE', IDEM, 0, -1), P .. 'idem:')
delete_all(redis.call('SMEMBERS', SERIES), P .. 'usage:')
redis.call('DEL', POOL, USERS, ORDER, LEDGER, META, IDEM, SERIES, TOTALS, CLOCK)
redis.call('SET', POOL, '0')
for i = 3, #ARGV, 5 do
  local amount = tonumber(ARGV[i + 2])
  local before, after
  if ARGV[i] == 'pool' then
    before = num(redis.call('GET', POOL))
    after = before + amount
    redis.call('SET', POOL, fmt(after))
  else
    before = user_before(ARGV[i + 1])
    after = before + amount
    redis.call('HSET', USERS, ARGV[i + 1], fmt(after))
  end
  append(ARGV[i + 3], amount, before, after, ARGV[i + 4])
end
redis.call('HSET', META, 'initialised', '1')
return {'ok', 1}
""")

# ARGV: P, mode, wall, shared, user, amount, tail, ledger_id, then by mode:
#   'plain'    (no key)
#   'once'     member, fingerprint, ttl, max_keys: claim, grant and record in this one step;
#   'complete' member: complete a key claimed earlier by CLAIM (a grant held in flight).
# Returns {'ok', before, after}, {'replay', user, amount, before, after, ledger_id} or {ERR tag}.
GRANT = _script(r"""
local mode, now = ARGV[2], now_from(ARGV[3], ARGV[4])
local user, amount_text, tail, ledger_id = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local amount = tonumber(amount_text)
local rec = ARGV[9] and P .. 'idem:' .. ARGV[9]
if mode == 'once' then
  local answer = check_key(rec, ARGV[10], now, tonumber(ARGV[12]))
  if answer then return answer end
end
if amount > num(redis.call('GET', POOL)) then return {ERR.pool_too_low} end
local balance = redis.call('HGET', USERS, user)
local before = num(balance)
if before + amount > MAX_SAFE then return {ERR.amount_too_large} end
if not balance then redis.call('RPUSH', ORDER, user) end
redis.call('DECRBY', POOL, amount_text)
local after = redis.call('HINCRBY', USERS, user, amount_text)
local at = time_text(now)
track(append(at, amount, before, after, tail), 'g', at, {amount_text})
local result = {'state', 'done', 'user', user, 'amount', amount_text, 'before', fmt(before), 'after', fmt(after),
  'ledger_id', ledger_id}
if mode == 'once' then
  local exp = now + tonumber(ARGV[11])
  redis.call('HSET', rec, 'fp', ARGV[10], 'exp', time_text(exp), unpack(result))
  expire_at(rec, exp, now)
  redis.call('ZADD', IDEM, redis.call('HINCRBY', META, 'idem_seq', 1), ARGV[9])
elseif mode == 'complete' and redis.call('EXISTS', rec) == 1 then
  redis.call('HSET', rec, unpack(result))
  redis.call('HDEL', rec, 'owner')
  expire_at(rec, tonumber(redis.call('HGET', rec, 'exp')), now)
end
return {'ok', fmt(before), fmt(after)}
""")

# ARGV: P, member, fingerprint, now, ttl, max_keys, lease_ms, owner (a token naming this
# claim, for RELEASE). For a grant held in flight (``--grant-delay``) before GRANT 'complete'.
# Returns {'claimed'}, {'replay', user, amount, before, after, ledger_id} or {ERR tag}.
CLAIM = _script(r"""
local rec, now = P .. 'idem:' .. ARGV[2], tonumber(ARGV[4])
local answer = check_key(rec, ARGV[3], now, tonumber(ARGV[6]))
if answer then return answer end
redis.call('HSET', rec, 'fp', ARGV[3], 'state', 'flight', 'exp', time_text(now + tonumber(ARGV[5])), 'owner', ARGV[8])
-- An in-flight claim lives only for a lease: if its worker dies, the key frees itself.
redis.call('PEXPIRE', rec, ARGV[7])
redis.call('ZADD', IDEM, redis.call('HINCRBY', META, 'idem_seq', 1), ARGV[2])
return {'claimed'}
""")

# ARGV: P, member, owner. Only the caller's own in-flight claim is released: a completed
# record stays, and so does a claim another request made meanwhile (a release sent again
# after an outage must never free a key someone else is processing).
RELEASE = _script(r"""
local rec = P .. 'idem:' .. ARGV[2]
local found = redis.call('HMGET', rec, 'state', 'owner')
if found[1] == 'flight' and found[2] == ARGV[3] then
  redis.call('DEL', rec)
  redis.call('ZREM', IDEM, ARGV[2])
  return 1
end
return 0
""")

# ARGV: P, target ('pool' | 'user'), user, amount, now, model, prompt tokens, completion
# tokens, tail.
CHARGE = _script(r"""
local amount_text = ARGV[4]
local amount = tonumber(amount_text)
local before, after
if ARGV[2] == 'pool' then
  before = num(redis.call('GET', POOL))
  if amount > before then return {ERR.developer_too_low} end
  after = redis.call('DECRBY', POOL, amount_text)
else
  local balance = redis.call('HGET', USERS, ARGV[3])
  if not balance then return {ERR.user_not_found} end
  before = tonumber(balance)
  if amount > before then return {ERR.user_too_low} end
  after = redis.call('HINCRBY', USERS, ARGV[3], fmt(-amount))
end
local at = time_text(tonumber(ARGV[5]))
track(append(at, amount, before, after, ARGV[9]), 'c:' .. ARGV[6], at, {ARGV[7], ARGV[8], amount_text})
return {'ok', fmt(before), fmt(after)}
""")

# ARGV: P, target ('pool' | 'user'), user, new balance, now, tail. An adjustment entry
# records the signed difference, so the ledger still explains the balance.
SET_BALANCE = _script(r"""
local target = tonumber(ARGV[4])
if not target or target < 0 or target > MAX_SAFE then return {ERR.amount_too_large} end
local before
if ARGV[2] == 'pool' then
  before = num(redis.call('GET', POOL))
  redis.call('SET', POOL, ARGV[4])
else
  before = user_before(ARGV[3])
  redis.call('HSET', USERS, ARGV[3], ARGV[4])
end
append(time_text(tonumber(ARGV[5])), target - before, before, target, ARGV[6])
return {'ok', fmt(before), fmt(target)}
""")

# ARGV: P, wall, shared[, since, until]. The usage window [now - 30 days, now] (or the one
# given): for every series, its name and the members at the window's two edges (the last
# before it and the last in it, '' for none); Python subtracts their running totals. Also
# the pool and the time used, for GET /v1/me in one round trip.
USAGE = _script(r"""
local now = now_from(ARGV[2], ARGV[3])
local since, upper = now - WINDOW, now  -- (``until`` is a Lua keyword)
if ARGV[4] then since, upper = tonumber(ARGV[4]), tonumber(ARGV[5]) end
local out = {time_text(now), time_text(since), time_text(upper), redis.call('GET', POOL) or '0'}
local below, upto = '(' .. time_text(since), time_text(upper)
for _, name in ipairs(redis.call('SMEMBERS', SERIES)) do
  local key = P .. 'usage:' .. name
  local low = redis.call('ZREVRANGEBYSCORE', key, below, '-inf', 'LIMIT', 0, 1)[1] or ''
  local high = redis.call('ZREVRANGEBYSCORE', key, upto, '-inf', 'LIMIT', 0, 1)[1] or ''
  if high ~= low then
    out[#out + 1] = name
    out[#out + 1] = low
    out[#out + 1] = high
  end
end
return out
""")

# ARGV: P, cursor, limit. Users in the order they appeared: a page of names and balances,
# after the total count.
USERS_PAGE = _script(r"""
local start = tonumber(ARGV[2])
local names = redis.call('LRANGE', ORDER, start, start + tonumber(ARGV[3]) - 1)
local out = {redis.call('LLEN', ORDER)}
if #names == 0 then return out end
local balances = redis.call('HMGET', USERS, unpack(names))
for i, name in ipairs(names) do
  out[#out + 1] = name
  out[#out + 1] = balances[i] or '0'
end
return out
""")

# ARGV: P, wall, shared, cursor, limit. Live records from the first-use sequence ``cursor``
# on, oldest first: the next cursor ('' at the end), then member, state, exp, ledger_id each.
KEYS_PAGE = _script(r"""
purge(now_from(ARGV[2], ARGV[3]))
local limit = tonumber(ARGV[5])
local page = redis.call('ZRANGEBYSCORE', IDEM, ARGV[4], '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
local out = {''}
for i = 1, math.min(#page, 2 * limit), 2 do
  local r = redis.call('HMGET', P .. 'idem:' .. page[i], 'state', 'exp', 'ledger_id')
  if r[1] then
    out[#out + 1] = page[i]
    out[#out + 1] = r[1]
    out[#out + 1] = r[2]
    out[#out + 1] = r[3] or ''
  end
end
if #page > 2 * limit then out[1] = page[2 * limit + 2] end
return out
""")

# ARGV: P, since. Entries at or after ``since``: a binary search while the ledger is in time
# order (one run), else all of it (the caller filters).
LEDGER_SINCE = _script(r"""
local since = tonumber(ARGV[2])
if redis.call('HGET', META, 'run') then return redis.call('LRANGE', LEDGER, 0, -1) end
local function at(index) return tonumber(string.match(redis.call('LINDEX', LEDGER, index), '^%[([^,]+),')) end
local low, high = 0, redis.call('LLEN', LEDGER)
while low < high do
  local middle = math.floor((low + high) / 2)
  if at(middle) < since then low = middle + 1 else high = middle end
end
return redis.call('LRANGE', LEDGER, low, -1)
""")

SCRIPTS = (
    "LOAD", "GRANT", "CLAIM", "RELEASE", "CHARGE", "SET_BALANCE", "USAGE", "USERS_PAGE", "KEYS_PAGE", "LEDGER_SINCE"
)
