"""Rules of access and documented facts: the key is checked exactly (missing, another scheme,
near misses), and the public endpoint lists the documented packages at better rates for larger
ones. /v1/me's usage summary is rules_me'; the edges every route shares are rules_edges'."""

from __future__ import annotations

import itertools
import secrets
from fractions import Fraction
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, Operation
from mockserver.domain.money import MICROS_PER_CENT

from .actions import SMALL_PROMPT, code_text, grant, shown
from .checks import parse_money
from .engine import Exchange
from .facts import BALANCE, CHAT, GRANT, PACKAGES
from .properties import Probe
from .registry import Cost, Needs, probe
from .strategies import near_miss_keys

CENT = MICROS_PER_CENT
AUTH = ("seed: 401 invalid_api_key All Missing or invalid API key",)
SECURITY = "#/components/securitySchemes/bearerAuth"
SMALL_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SMALL_PROMPT}], "max_tokens": 1}


def request_for(p: Probe, op: Operation) -> dict[str, Any]:
    """Arguments for a request to ``op`` that is harmless, and would succeed with the key."""
    t = p.t
    if op.operation_id == GRANT:
        return {"headers": {"Idempotency-Key": t.guard.new_idempotency_key()},
                "body": {"external_user_id": t.guard.new_user(), "amount": 0.01,
                         "description": "quota-conformance auth probe"}}
    path = {prm["name"]: t.guard.new_user() for prm in op.parameters if prm.get("in") == "path"}
    if op.operation_id == CHAT:
        return {"headers": {t.facts.user_header: t.guard.new_user()}, "body": dict(SMALL_CHAT)}
    if op.method == "POST":
        return {"path": path, "body": dict(SMALL_CHAT)}
    return {"path": path}


def _is_401(p: Probe, exchange: Exchange) -> bool:
    invalid = p.t.facts.error("InvalidApiKey")
    return invalid.answered(exchange)


@probe("auth.missing_key", sources=AUTH, elements=(SECURITY, "#/components/responses/InvalidApiKey"),
       cost=Cost(5 * CENT, 1, minimum=0), stage=7)
def auth_missing_key(p: Probe) -> None:
    """No Authorization header, the key under another scheme, the scheme with no key, or an unknown key:
    401 invalid_api_key on every operation but the public one (grants and chats included), a
    grant's replay (its Idempotency-Key and body sent again) too. The right key under no scheme or
    another one is only the contract's to refuse (it is neither missing nor invalid)."""
    key = p.t.options.api_key
    variants = {
        "no Authorization header": None,
        "the key without the Bearer scheme": key,
        "the key with another scheme": f"Token {key}",
        "the Bearer scheme with no key": "Bearer",
        "an unknown key": "Bearer sk-quota-" + secrets.token_hex(16),
    }
    not_probed: list[str] = []
    for op in p.t.contract.operations:
        if op.public:
            continue
        if op.method != "GET" and p.t.options.read_only:
            not_probed.append(f"{op.method} {op.path} (read-only mode)")
            continue
        queries = [{}, {"external_user_id": p.t.guard.new_user()}] if op.operation_id == BALANCE else [{}]
        for label, value in variants.items():
            if op.operation_id == GRANT and label not in ("no Authorization header", "an unknown key"):
                continue  # each grant probe costs a cent of the budget: the two plainest cases suffice
            if op.operation_id == GRANT and not p.affordable(0.01):
                not_probed.append(f"{op.method} {op.path} ({label}: needs a cent more of --budget)")
                continue
            for query in queries:
                kwargs = request_for(p, op)
                if op.operation_id == GRANT:
                    p.spend(kwargs["body"]["amount"])
                headers = {**kwargs.pop("headers", {}), **({"Authorization": value} if value else {})}
                exchange = p.t.send(op.operation_id, auth=False, headers=headers, query=query or None, **kwargs)
                what = f"{op.method} {op.path}{'?external_user_id=' if query else ''} with {label}"
                invalid = p.t.facts.error("InvalidApiKey")
                # The right key under no scheme or another one is neither missing nor invalid:
                # servers that strip an optional "Bearer " accept it, and the docs only say how
                # a key is sent. Refusing it is the contract's choice.
                mark = CONTRACT if value is not None and key in value and not value.startswith("Bearer") else None
                ok = p.require(_is_401(p, exchange), [exchange], f"{what}: expected {invalid.status} {invalid.code}",
                               f"{what} answered {exchange.status} {code_text(exchange)}", mark)
                if not ok and op.method != "GET":
                    break  # it was accepted: send no more requests that could credit or charge
    if not p.t.options.read_only and p.affordable(0.03):
        _a_replay_needs_the_key(p)
    elif not p.t.options.read_only:
        not_probed.append("a grant's replay without its key (needs 3 cents more of --budget)")
    if not_probed:
        p.t.results.note(p.rule.name, "not probed: " + ", ".join(not_probed))


def _a_replay_needs_the_key(p: Probe) -> None:
    """A stored grant is answered to a caller with the key only: the same request (its
    Idempotency-Key and body) sent again with no key or an unknown one is 401, as any other
    request is. An idempotency cache consulted before the key check hands the grant to anyone."""
    first = grant(p, p.t.guard.new_user(), 1, description="quota-conformance auth replay")
    key = (first.case.headers or {}).get("Idempotency-Key")
    if not first.ok or key is None:
        return  # grant.arithmetic judges the grant itself
    unknown = "Bearer sk-quota-" + secrets.token_hex(16)
    for label, value in (("no Authorization header", None), ("an unknown key", unknown)):
        p.spend(first.case.body["amount"])  # a server that got this wrong might credit it again
        headers = {"Idempotency-Key": key, **({"Authorization": value} if value else {})}
        again = p.t.send(GRANT, auth=False, headers=headers, body=dict(first.case.body))
        p.require(_is_401(p, again), [first, again], "A grant's replay was answered without a valid key",
                  f"the grant sent again with its Idempotency-Key and {label} answered {again.status} "
                  f"{code_text(again)}, not 401: a stored answer is the key holder's only")


def _a_funded_user(p: Probe, description: str) -> str:
    """A user of this run that holds money: one an earlier rule's grant made (free), else one
    granted a cent now (if the budget and the mode allow), else a user never granted."""
    for user in reversed(list(p.t.ledger_owners.values())):
        if isinstance(user, str) and user.isascii() and user.isprintable():
            return user
    user = p.t.guard.new_user()
    if not p.t.options.read_only and p.affordable(0.01):
        grant(p, user, 1, description=description)
    return user


# Forms of a read a router may serve while its key check, written for the contract's own
# method and paths, never sees them: (label, method, path made from the contract's path).
OTHER_FORMS = (
    ("HEAD", "HEAD", lambda path: path),
    ("OPTIONS", "OPTIONS", lambda path: path),
    ("its path in capitals", "GET", lambda path: path.upper()),
    ("a trailing slash", "GET", lambda path: path + "/"),
)


@probe("auth.other_forms", sources=AUTH, elements=(SECURITY,), cost=Cost(0, 1, most=CENT), stage=7)
def auth_other_forms(p: Probe) -> None:
    """Every read that needs a key, sent without one as HEAD, under its path in capitals, with a
    trailing slash, or as OPTIONS (answered, but never with the read's own data), is refused, never
    served (2xx): a router that serves a form the key check does not cover leaks the account, and
    on a user's balance who exists (a funded user's is asked)."""
    user = _a_funded_user(p, "quota-conformance auth probe")
    # An edge that answers every HEAD itself (200, no body, whatever the path) says nothing of
    # any route: HEAD is judged only where a path the contract does not define is refused.
    no_key: dict[str, str | None] = {"Authorization": None}  # requests leaves out a header set to None
    nowhere = p.t.raw("HEAD", f"/v1/conformance-no-such-route-{secrets.token_hex(4)}", headers=no_key)
    forms = [form for form in OTHER_FORMS if form[1] != "HEAD" or not 200 <= nowhere.status < 300]
    if len(forms) < len(OTHER_FORMS):
        p.t.results.note(p.rule.name, f"HEAD not judged: HEAD on a route the contract does not define answered "
                                      f"{nowhere.status}")
    for op in p.t.contract.operations:
        if op.method != "GET" or op.public:
            continue
        path = op.path
        for prm in op.parameters:
            if prm.get("in") == "path":
                path = path.replace("{" + prm["name"] + "}", "\0")
        queries = ["", "?external_user_id=" + quote(user, safe="")] if op.operation_id == BALANCE else [""]
        for (label, method, form), query in itertools.product(forms, queries):
            sent = form(path).replace("\0", quote(user, safe="")) + query
            exchange = p.t.raw(method, sent, headers=no_key)
            served = 200 <= exchange.status < 300
            if method == "OPTIONS":
                # A 2xx is what OPTIONS is for (Allow, a CORS preflight): only the read's own
                # answer given to it is served without the key.
                served = served and _carries_the_read(p, op, exchange)
            p.require(not served, [exchange], "A read was served without an API key",
                      f"{method} {sent} without an Authorization header ({label}) answered {exchange.status}: "
                      "every operation but the public one needs the key")


def _carries_the_read(p: Probe, op: Operation, exchange: Exchange) -> bool:
    """Whether ``exchange``'s body is ``op``'s 200 answer: a JSON object holding a property its
    200 schema names (a balance, the usage), not an empty or descriptive answer."""
    body = exchange.json
    if not isinstance(body, dict) or not body:
        return False
    schema = op.responses.get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
    named: set[str] = set()
    for part in [schema, *schema.get("allOf", []), *schema.get("oneOf", []), *schema.get("anyOf", [])]:
        if isinstance(part, dict):
            named |= set(part.get("properties", {}))
    return bool(named & set(body))


@probe("auth.second_key", sources=AUTH, elements=(SECURITY,), cost=Cost(0, 1, most=CENT),
       needs=(Needs.SECOND_KEY,), stage=7)
def auth_second_key(p: Probe) -> None:
    """A second API key of the account (--second-api-key) is a valid key on every read, as the
    first is: none refuses it as an invalid key (a deployment that knows the second key on some
    routes only answers 401 elsewhere); any other difference from the first key's answer (a key
    scoped to some routes, or to users of its own) breaks only the contract's choice."""
    second = p.t.options.second_api_key
    user = _a_funded_user(p, "quota-conformance second key")
    for op in p.t.contract.operations:
        if op.method != "GET" or op.public:
            continue
        path = {prm["name"]: user for prm in op.parameters if prm.get("in") == "path"}
        for query in ([None, {"external_user_id": user}] if op.operation_id == BALANCE else [None]):
            first = p.t.send(op.operation_id, path=path, query=query)
            other = p.t.send(op.operation_id, auth=False, path=path, query=query,
                             headers={"Authorization": f"Bearer {second}"})
            where = f"GET {op.path}" + ("?external_user_id=" if query else "")
            # Refused as an invalid key, it breaks the docs; answered otherwise (a key scoped to
            # some routes, or to users of its own: the docs say nothing of scopes), the contract.
            p.require(other.status == first.status, [first, other], "The second API key is not a key everywhere",
                      f"{where} answered {first.status} with the first key and {other.status} {code_text(other)} "
                      "with the second", None if _is_401(p, other) else CONTRACT)


@probe("auth.near_miss_key", sources=AUTH, elements=(SECURITY,), cost=Cost(0, 8), stage=0)
def auth_near_miss_key(p: Probe) -> None:
    """A key one character off, a prefix of the key, the key with extra characters, a
    letter's case flipped, or its dashes removed: each is an invalid key, 401 invalid_api_key,
    on every read that needs a key and on both chat forms."""
    key = p.t.options.api_key
    if p.first:
        near = [("the last character changed", key[:-1] + ("0" if key[-1] != "0" else "1")),
                ("a prefix", key[:-1]), ("extra characters", key + "0"),
                ("case flipped", key.swapcase() if key.swapcase() != key else key + "X"),
                ("its dashes removed", key.replace("-", "") if "-" in key else key + "-")]
    else:
        near = [p.draw(near_miss_keys(key))]
    # Every read that needs the key, and the chats (for a user never granted, so that an
    # accepted key costs nothing): a server may compare keys differently on one route than on
    # another (a chat gateway in front of the API, say). Grants would cost budget.
    ops = [op for op in p.t.contract.operations if not op.public and op.operation_id != GRANT
           and (op.method == "GET" or not p.t.options.read_only)]
    for label, candidate in near:
        if candidate == key:
            continue
        for op in ops if p.first else [p.draw(st.sampled_from(ops))]:
            kwargs = request_for(p, op)
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {candidate}"}
            exchange = p.t.send(op.operation_id, auth=False, **kwargs)
            p.require(_is_401(p, exchange), [exchange], "A near-miss API key was accepted",
                      f"{op.method} {op.path} with the key ({label}) answered {exchange.status} {code_text(exchange)}")


@probe("packages.listed", sources=(
    "seed: GET /v1/packages lists purchasable balance packages (public endpoint, no auth required).",
    "public-facts: GET /v1/packages (public) Example response",
), elements=("#/paths/~1v1~1packages/get",), cost=Cost(0, 1), stage=0)
def packages_listed(p: Probe) -> None:
    """GET /v1/packages answers without a key and lists the packages the docs list, each with
    its documented name, price and balance."""
    exchange = p.t.send(PACKAGES, auth=False)
    if not exchange.ok:
        p.fail([exchange], "The public package list refused a request without a key",
               f"GET /v1/packages is public (security: []) but answered {exchange.status} {code_text(exchange)}")
        return
    listed = exchange.field("packages")
    by_id = {pkg.get("id"): pkg for pkg in listed if isinstance(pkg, dict)} if isinstance(listed, list) else {}
    problems = []
    for documented in p.t.facts.documented_packages:
        found = by_id.get(documented["id"])
        if found is None:
            problems.append(f"{documented['id']!r} is missing")
            continue
        for field in ("name", "price_cents", "balance_display"):
            if found.get(field) != documented[field]:
                problems.append(f"{documented['id']!r} has {field} {shown(found.get(field))}, the docs say "
                                f"{documented[field]!r}")
    p.require(not problems, [exchange], "The packages differ from the documented ones", "; ".join(problems))


@probe("packages.better_rate", sources=(
    "seed: Users buy balance in tiered packages -- larger packages get a better rate.",
), elements=("#/paths/~1v1~1packages/get",), cost=Cost(0, 1), stage=0)
def packages_better_rate(p: Probe) -> None:
    """A larger package gives more balance per dollar paid than every smaller one."""
    exchange = p.t.send(PACKAGES, auth=False)
    listed = exchange.field("packages") if exchange.ok else None
    if not isinstance(listed, list):
        p.skip(f"GET /v1/packages answered {exchange.status} without a list (see packages.listed)")
    rates = []
    for pkg in listed:
        cents = parse_money(pkg.get("balance_display")) if isinstance(pkg, dict) else None
        price = pkg.get("price_cents") if isinstance(pkg, dict) else None
        if cents is None or not isinstance(price, int) or price <= 0:
            continue
        rates.append((price, Fraction(cents, price), pkg.get("id")))
    rates.sort()
    worse = [(a, b) for a, b in itertools.pairwise(rates) if a[0] < b[0] and b[1] <= a[1]]
    p.require(not worse, [exchange], "A larger package does not get a better rate", "; ".join(
        f"{b[2]!r} gives {float(b[1]):.4f} of balance per cent paid, no better than {a[2]!r} ({float(a[1]):.4f})"
        for a, b in worse))
