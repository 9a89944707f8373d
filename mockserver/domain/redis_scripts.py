"""The Lua scripts behind :class:`~mockserver.domain.redis_store.RedisStore`.

Redis runs a script as one atomic step: no other client's command interleaves with it, and
replication and the append-only file record its effects as one transaction. Every money
movement and every idempotency decision is therefore exactly one script call.

Numbers: Lua numbers are IEEE doubles, exact for integers up to 2^53 - 1. Balances move with
INCRBY/HINCRBY (64-bit integers inside Redis), every result is checked against ``MAX_SAFE``
before it is written, and integers are formatted with ``%.0f`` so that they never turn into
exponent notation. Times (the mock clock's epoch seconds) travel as the text Python wrote, so
a ledger entry's ``at`` reads back as exactly the float that was passed in.

A ledger entry is one JSON array, ``[at, amount, before, after, id, kind, user, ...]``. The
script writes the first four fields (it alone knows the balances); Python encodes the rest
(``TAIL``, starting with a comma) so that any user id or description is escaped correctly.

Key layout under the namespace prefix P (every key is passed in KEYS except idempotency
records found while purging or evicting, which are ``P .. 'idem:' .. member``):
``pool`` (string), ``users`` (hash), ``ledger`` (list), ``meta`` (hash: initialised, last_at,
unordered, idem_seq), ``idem`` (sorted set of members by creation sequence), ``idem:<member>``
(hash: fp, state = flight|done, exp, scope, key, result fields).
"""

from __future__ import annotations

from .errors import MAX_SAFE_MICRODOLLARS, SCRIPT_ERRORS

# A script names a failure by its error type's reply tag (``return {ERR.pool_too_low}``);
# the store raises that same type (errors.store_error), so codes and messages live only there.
_ERR_TABLE = "local ERR = {" + ", ".join(f"{e.reply} = '{e.reply}'" for e in SCRIPT_ERRORS) + "}"

# Shared helpers, prepended to every script that needs them.
_PRELUDE = (
    _ERR_TABLE
    + f"\nlocal MAX_SAFE = {MAX_SAFE_MICRODOLLARS}"
    + r"""
local function fmt(n) return string.format('%.0f', n) end
local function num(text) if text then return tonumber(text) end return 0 end

-- Append an entry; remember when the clock moved back so reads know the list is unsorted.
local function append(ledger, meta, at_text, amount, before, after, tail)
  local last = redis.call('HGET', meta, 'last_at')
  if last and tonumber(at_text) < tonumber(last) then redis.call('HSET', meta, 'unordered', '1') end
  redis.call('HSET', meta, 'last_at', at_text)
  redis.call('RPUSH', ledger, '[' .. at_text .. ',' .. fmt(amount) .. ',' .. fmt(before) .. ',' .. fmt(after) .. tail)
end

-- Forget records whose (mock) expiry has passed, oldest first, stopping at the first live
-- one: the same rule as the in-memory table. Records Redis already expired are gone too.
local function purge(idem, rec_prefix, now)
  while true do
    local oldest = redis.call('ZRANGE', idem, 0, 0)
    if #oldest == 0 then return end
    local exp = redis.call('HGET', rec_prefix .. oldest[1], 'exp')
    if exp and tonumber(exp) > now then return end
    redis.call('DEL', rec_prefix .. oldest[1])
    redis.call('ZREM', idem, oldest[1])
  end
end
"""
)

# KEYS: pool, users, ledger, meta, idem. ARGV: mode ('init' | 'load'), record prefix, then
# per deposit 5 values: target ('pool' | 'user'), user id, amount, at, tail.
# 'init' loads only an uninitialised namespace: a restarted mock or a second worker keeps
# the state it finds. Returns {'ok', 1} when it loaded, {'ok', 0} when it kept.
LOAD = (
    _PRELUDE
    + r"""
local pool, users, ledger, meta, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if ARGV[1] == 'init' and redis.call('HEXISTS', meta, 'initialised') == 1 then return {'ok', 0} end
-- Check before the first write: Redis does not roll a failed script back.
for i = 3, #ARGV, 5 do
  local amount = tonumber(ARGV[i + 2])
  if not amount or amount < 0 or amount > MAX_SAFE then return {ERR.amount_too_large} end
end
local members = redis.call('ZRANGE', idem, 0, -1)
for i = 1, #members, 500 do
  local batch = {}
  for j = i, math.min(i + 499, #members) do batch[#batch + 1] = ARGV[2] .. members[j] end
  redis.call('DEL', unpack(batch))
end
redis.call('DEL', pool, users, ledger, meta, idem)
redis.call('SET', pool, '0')
for i = 3, #ARGV, 5 do
  local amount = tonumber(ARGV[i + 2])
  local before, after
  if ARGV[i] == 'pool' then
    before = num(redis.call('GET', pool))
    after = before + amount
    redis.call('SET', pool, fmt(after))
  else
    before = num(redis.call('HGET', users, ARGV[i + 1]))
    after = before + amount
    redis.call('HSET', users, ARGV[i + 1], fmt(after))
  end
  append(ledger, meta, ARGV[i + 3], amount, before, after, ARGV[i + 4])
end
redis.call('HSET', meta, 'initialised', '1')
return {'ok', 1}
"""
)

# KEYS: idem, meta, record. ARGV: record prefix, member, scope, key, fingerprint, now,
# expires_at, max_keys, lease_ms, owner (a token naming this claim, for RELEASE).
# Returns {'claimed'}, {'replay', user, amount, before, after, ledger_id} or {ERR tag}.
CLAIM = (
    _PRELUDE
    + r"""
local idem, meta, rec = KEYS[1], KEYS[2], KEYS[3]
local prefix, member = ARGV[1], ARGV[2]
purge(idem, prefix, tonumber(ARGV[6]))
local found = redis.call('HMGET', rec, 'fp', 'state', 'user', 'amount', 'before', 'after', 'ledger_id')
if found[1] then
  if found[1] ~= ARGV[5] then return {ERR.key_reused} end
  if found[2] ~= 'done' then return {ERR.key_in_flight} end
  return {'replay', found[3], found[4], found[5], found[6], found[7]}
end
-- Bounded, and never by forgetting a live key (its retry would be credited again): when
-- full, refuse, saying when the oldest key expires.
if redis.call('ZCARD', idem) >= tonumber(ARGV[8]) then
  local oldest = redis.call('ZRANGE', idem, 0, 0)
  local exp = tonumber(redis.call('HGET', prefix .. oldest[1], 'exp') or ARGV[6])
  return {ERR.keys_full, tostring(exp - tonumber(ARGV[6]))}
end
local seq = redis.call('HINCRBY', meta, 'idem_seq', 1)
redis.call('HSET', rec, 'fp', ARGV[5], 'state', 'flight', 'exp', ARGV[7], 'scope', ARGV[3], 'key', ARGV[4],
  'owner', ARGV[10])
-- An in-flight claim lives only for a lease: if its worker dies, the key frees itself.
redis.call('PEXPIRE', rec, ARGV[9])
redis.call('ZADD', idem, seq, member)
return {'claimed'}
"""
)

# KEYS: idem, record. ARGV: member, owner. Only the caller's own in-flight claim is released:
# a completed record stays, and so does a claim another request made meanwhile (a release
# sent again after an outage must never free a key someone else is processing).
RELEASE = r"""
local found = redis.call('HMGET', KEYS[2], 'state', 'owner')
if found[1] == 'flight' and found[2] == ARGV[2] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# KEYS: pool, users, ledger, meta[, record]. ARGV: user, amount, at, tail, ledger_id.
# With a record, the result is stored under it in this same step and its Redis TTL becomes
# the rest of its (mock-clock) lifetime.
GRANT = (
    _PRELUDE
    + r"""
local pool, users, ledger, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user, amount = ARGV[1], tonumber(ARGV[2])
if amount > num(redis.call('GET', pool)) then return {ERR.pool_too_low} end
local before = num(redis.call('HGET', users, user))
if before + amount > MAX_SAFE then return {ERR.amount_too_large} end
redis.call('DECRBY', pool, ARGV[2])
local after = redis.call('HINCRBY', users, user, ARGV[2])
append(ledger, meta, ARGV[3], amount, before, after, ARGV[4])
local rec = KEYS[5]
if rec and redis.call('EXISTS', rec) == 1 then
  redis.call('HSET', rec, 'state', 'done', 'user', user, 'amount', ARGV[2], 'before', fmt(before),
    'after', fmt(after), 'ledger_id', ARGV[5])
  local ms = math.floor((tonumber(redis.call('HGET', rec, 'exp')) - tonumber(ARGV[3])) * 1000)
  if ms < 1 then ms = 1 end
  redis.call('PEXPIRE', rec, ms)
end
return {'ok', fmt(before), fmt(after)}
"""
)

# KEYS: pool, users, ledger, meta. ARGV: target ('pool' | 'user'), user, amount, at, tail.
CHARGE = (
    _PRELUDE
    + r"""
local pool, users, ledger, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local amount = tonumber(ARGV[3])
local before, after
if ARGV[1] == 'pool' then
  before = num(redis.call('GET', pool))
  if amount > before then return {ERR.developer_too_low} end
  after = redis.call('DECRBY', pool, ARGV[3])
else
  local balance = redis.call('HGET', users, ARGV[2])
  if not balance then return {ERR.user_not_found} end
  before = tonumber(balance)
  if amount > before then return {ERR.user_too_low} end
  after = redis.call('HINCRBY', users, ARGV[2], fmt(-amount))
end
append(ledger, meta, ARGV[4], amount, before, after, ARGV[5])
return {'ok', fmt(before), fmt(after)}
"""
)

# KEYS: pool, users, ledger, meta. ARGV: target ('pool' | 'user'), user, new balance, at, tail.
# An adjustment entry records the signed difference, so the ledger still explains the balance.
SET_BALANCE = (
    _PRELUDE
    + r"""
local pool, users, ledger, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local target = tonumber(ARGV[3])
if not target or target < 0 or target > MAX_SAFE then return {ERR.amount_too_large} end
local before
if ARGV[1] == 'pool' then
  before = num(redis.call('GET', pool))
  redis.call('SET', pool, ARGV[3])
else
  before = num(redis.call('HGET', users, ARGV[2]))
  redis.call('HSET', users, ARGV[2], ARGV[3])
end
append(ledger, meta, ARGV[4], target - before, before, target, ARGV[5])
return {'ok', fmt(before), fmt(target)}
"""
)

# KEYS: ledger, meta. ARGV: since. Entries at or after ``since``: a binary search while the
# ledger is in time order, else all of it (the caller filters).
LEDGER_SINCE = r"""
local ledger, since = KEYS[1], tonumber(ARGV[1])
if redis.call('HGET', KEYS[2], 'unordered') then return redis.call('LRANGE', ledger, 0, -1) end
local function at(index) return tonumber(string.match(redis.call('LINDEX', ledger, index), '^%[([^,]+),')) end
local low, high = 0, redis.call('LLEN', ledger)
while low < high do
  local middle = math.floor((low + high) / 2)
  if at(middle) < since then low = middle + 1 else high = middle end
end
return redis.call('LRANGE', ledger, low, -1)
"""

# KEYS: idem. ARGV: record prefix, now. Live records, oldest first: scope, key, state, exp, ledger_id.
VIEWS = (
    _PRELUDE
    + r"""
local idem, prefix = KEYS[1], ARGV[1]
purge(idem, prefix, tonumber(ARGV[2]))
local out = {}
for _, m in ipairs(redis.call('ZRANGE', idem, 0, -1)) do
  local r = redis.call('HMGET', prefix .. m, 'scope', 'key', 'state', 'exp', 'ledger_id')
  if r[1] then
    out[#out + 1] = {r[1], r[2], r[3], r[4], r[5] or ''}
  end
end
return out
"""
)
