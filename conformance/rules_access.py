"""Rules of access and documented facts: the key is checked exactly (missing, another scheme,
near misses), the public endpoint lists the documented packages at better rates for larger
ones, /v1/me reports the usage it saw, and routes or methods the contract does not define
answer the JSON error envelope."""

from __future__ import annotations

import itertools
import json
import secrets
from fractions import Fraction
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, DOCUMENTED, Operation
from mockserver.domain.money import MICROS_PER_CENT

from .actions import SMALL_PROMPT, amount_json, code_text, grant, me, shown
from .checks import parse_money
from .engine import Exchange
from .facts import BALANCE, CHAT, GRANT, PACKAGES
from .properties import Probe
from .registry import Cost, Needs, probe
from .safety import UNUSUAL_METHODS
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
    return exchange.status == invalid.status and exchange.error_code == invalid.code


@probe("auth.missing_key", sources=AUTH, elements=(SECURITY, "#/components/responses/InvalidApiKey"),
       cost=Cost(2 * CENT, 1, minimum=0), stage=7)
def auth_missing_key(p: Probe) -> None:
    """No Authorization header, the key under another scheme, the scheme with no key, or an unknown key:
    401 invalid_api_key on every operation but the public one (grants and chats included)."""
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
                ok = p.require(_is_401(p, exchange), [exchange], f"{what}: expected {invalid.status} {invalid.code}",
                               f"{what} answered {exchange.status} {code_text(exchange)}")
                if not ok and op.method != "GET":
                    break  # it was accepted: send no more requests that could credit or charge
    if not_probed:
        p.t.results.note(p.rule.name, "not probed: " + ", ".join(not_probed))


@probe("auth.near_miss_key", sources=AUTH, elements=(SECURITY,), cost=Cost(0, 8), stage=0)
def auth_near_miss_key(p: Probe) -> None:
    """A key one character off, a prefix of the key, the key with extra characters, a
    letter's case flipped, or its dashes removed: each is an invalid key, 401 invalid_api_key."""
    key = p.t.options.api_key
    if p.first:
        near = [("the last character changed", key[:-1] + ("0" if key[-1] != "0" else "1")),
                ("a prefix", key[:-1]), ("extra characters", key + "0"),
                ("case flipped", key.swapcase() if key.swapcase() != key else key + "X"),
                ("its dashes removed", key.replace("-", "") if "-" in key else key + "-")]
    else:
        near = [p.draw(near_miss_keys(key))]
    for label, candidate in near:
        if candidate == key:
            continue
        exchange = p.t.send(BALANCE, auth=False, headers={"Authorization": f"Bearer {candidate}"})
        p.require(_is_401(p, exchange), [exchange], "A near-miss API key was accepted",
                  f"GET /v1/balance with the key ({label}) answered {exchange.status} {code_text(exchange)}")


@probe("packages.listed", sources=(
    "seed: GET /v1/packages lists purchasable balance packages (public endpoint, no auth required).",
    "public-facts: GET /v1/packages (public) Example response",
), elements=("#/paths/~1v1~1packages/get",), cost=Cost(0, 1), stage=0)
def packages_listed(p: Probe) -> None:
    """GET /v1/packages answers without a key and lists the packages the docs list, each with
    its documented name, price and balance."""
    exchange = p.t.send(PACKAGES, auth=False)
    if exchange.status != 200:
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
    listed = exchange.field("packages") if exchange.status == 200 else None
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


@probe("me.usage", elements=("#/paths/~1v1~1me/get",), sources=(
    "seed: GET /v1/me returns the authenticated user with a 30-day usage summary.",
), choices=("#/paths/~1v1~1me/get/responses/200", "#/components/schemas/Me", "#/components/schemas/UsageSummary"),
    cost=Cost(CENT, 1), needs=(Needs.WRITES,), stage=9)
def me_usage(p: Probe) -> None:
    """GET /v1/me answers the account with its 30-day usage summary (documented); the summary
    counts a grant made meanwhile (the contract's shape: usage.grants)."""
    before = me(p)
    if not p.require(before.status == 200 and isinstance(before.json, dict), [before],
                     "GET /v1/me did not answer the profile", f"answered {before.status} {code_text(before)}"):
        return
    again = me(p)
    user = p.t.guard.new_user()
    granted = grant(p, user, 1)
    after = me(p)
    counts = [_grants(x) for x in (before, again, after)]
    if None in counts or granted.status != 200:
        p.fail([before, after], "GET /v1/me has no usage.grants summary",
               "usage.grants.count and total_microdollars are the contract's shape of the 30-day summary",
               CONTRACT)
        return
    (c0, t0), (c1, t1), (c2, t2) = counts  # type: ignore[misc]
    if (c0, t0) != (c1, t1):
        p.undecided("the usage summary moved for other reasons meanwhile")
        return
    p.require((c2 - c1, t2 - t1) == (1, CENT), [before, granted, after], "GET /v1/me did not count the grant",
              f"usage.grants went from {c1} grants, {t1} micro-dollars to {c2}, {t2} after a grant of $0.01",
              CONTRACT)


def _grants(exchange: Exchange) -> tuple[int, int] | None:
    count = exchange.field("usage", "grants", "count")
    total = exchange.field("usage", "grants", "total_microdollars")
    return (count, total) if isinstance(count, int) and isinstance(total, int) else None


def _envelope_problem(exchange: Exchange) -> str | None:
    error = exchange.field("error")
    if not (isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)):
        excerpt = exchange.response.content[:80].decode("utf-8", "replace")
        return f"answered {exchange.status} {excerpt!r}, not the JSON error envelope"
    return None


def _edge(p: Probe, exchange: Exchange, what: str, response: str) -> None:
    expected = p.t.facts.error(response)
    problem = _envelope_problem(exchange)
    if problem is not None:
        p.fail([exchange], f"{what} is not answered with the error envelope", f"{what} {problem}", DOCUMENTED)
    else:
        p.require(exchange.status == expected.status and exchange.error_code == expected.code, [exchange],
                  f"{what}: expected {expected.status} {expected.code}",
                  f"{what} answered {exchange.status} {code_text(exchange)}", CONTRACT)


@probe("edges.unknown_route", sources=("seed: All errors return a JSON body",),
       elements=("#/components/schemas/Error",), cost=Cost(0, 3), stage=0,
       choices=("#/components/responses/RouteNotFound", "#/x-quota-global-responses"))
def edges_unknown_route(p: Probe) -> None:
    """A path the contract does not define answers the JSON error envelope (the contract's
    choice: 404 not_found)."""
    segment = "conformance-no-such-route" if p.first else p.draw(st.text("abcdefghij-_", min_size=1, max_size=12))
    path = f"/v1/{quote(segment)}" if p.first or p.draw(st.booleans()) else f"/v2/{quote(segment)}/x"
    exchange = p.t.raw("GET", path)
    _edge(p, exchange, f"GET {path}", "RouteNotFound")


@probe("edges.wrong_method", sources=("seed: All errors return a JSON body",),
       elements=("#/components/schemas/Error",), cost=Cost(0, 1), stage=0,
       choices=("#/components/responses/MethodNotAllowed", "#/x-quota-global-responses"))
def edges_wrong_method(p: Probe) -> None:
    """A method a path does not define answers the JSON error envelope (the contract's
    choice: 405 method_not_allowed): GET on a POST-only route, and with --unusual-methods,
    PUT, PATCH and DELETE on every route."""
    by_path: dict[str, set[str]] = {}
    for op in p.t.contract.operations:
        by_path.setdefault(op.path, set()).add(op.method)
    for template, methods in by_path.items():
        path = template.replace("{external_user_id}", quote(p.t.guard.new_user(), safe=""))
        wrong = [] if "GET" in methods else ["GET"]
        if p.t.options.unusual_methods and not p.t.options.read_only:
            wrong += sorted(UNUSUAL_METHODS - methods)
        for method in wrong:
            exchange = p.t.raw(method, path)
            _edge(p, exchange, f"{method} {template}", "MethodNotAllowed")
    if not p.t.options.unusual_methods:
        p.t.results.note(p.rule.name, "PUT, PATCH and DELETE not sent (--unusual-methods sends them)")



# Media types a client might wrongly send a JSON body as; none of them is application/json.
NOT_JSON_MEDIA_TYPES = ("text/plain", "application/x-www-form-urlencoded", "text/plain; charset=utf-8",
                        "application/xml", "multipart/form-data; boundary=x", "application/octet-stream")


@probe("edges.non_json_body", sources=("seed: All errors return a JSON body",),
       elements=("#/components/schemas/Error",), cost=Cost(CENT, 1), needs=(Needs.WRITES,), stage=9,
       choices=("#/components/responses/UnsupportedMediaType",))
def edges_non_json_body(p: Probe) -> None:
    """A grant whose body is a valid grant but whose Content-Type is not application/json is
    refused (the contract's choice: 415 unsupported_media_type, granting nothing), and the
    refusal is the JSON error envelope. The docs say nothing of media types: a deployment that
    reads the body anyway breaks only the contract's choice."""
    media_type = NOT_JSON_MEDIA_TYPES[0] if p.first else p.draw(st.sampled_from(NOT_JSON_MEDIA_TYPES))
    body = _cent_grant_text(p, "quota-conformance: not JSON").encode()
    _raw_grant_refused(p, body, media_type, f"a grant sent as {media_type}", "UnsupportedMediaType",
                       "a body that is not application/json")


def _cent_grant_text(p: Probe, description: str) -> str:
    """A valid grant of a cent to a new user of the run, as JSON text (the cent is counted
    against the budget: a deployment that reads the body anyway grants it)."""
    amount = amount_json(1)
    p.spend(amount)
    return json.dumps({"external_user_id": p.t.guard.new_user(), "amount": amount, "description": description})


def _raw_grant_refused(p: Probe, body: bytes, media_type: str, what: str, response: str, refused: str) -> None:
    """POST ``body`` as a grant: a refusal must be the envelope (documented); the refusal
    itself, ``response`` of openapi.yaml, is the contract's choice."""
    headers = {"Content-Type": media_type, "Idempotency-Key": p.t.guard.new_idempotency_key()}
    exchange = p.t.raw("POST", p.t.facts.operation(GRANT).path, headers=headers, data=body)
    if exchange.status < 400:
        expected = p.t.facts.error(response)
        p.fail([exchange], f"{what} was accepted", f"{what} answered {exchange.status}; the contract refuses "
               f"{refused} with {expected.status} {expected.code}", CONTRACT)
        return
    _edge(p, exchange, what, response)


@probe("edges.body_too_large", sources=("seed: All errors return a JSON body",),
       elements=("#/components/schemas/Error",), cost=Cost(CENT, 1), needs=(Needs.WRITES,), stage=9,
       choices=("#/components/responses/PayloadTooLarge",))
def edges_body_too_large(p: Probe) -> None:
    """A grant body past the operation's x-quota-body-limit (a valid grant padded with JSON
    whitespace) is refused (the contract's choice: 413 payload_too_large, granting nothing),
    and the refusal is the JSON error envelope, not a proxy's or framework's page."""
    operation = p.t.facts.operation(GRANT)
    limit = operation.max_body_bytes
    if limit is None:
        p.skip("openapi.yaml gives the grant no x-quota-body-limit")
    padding = limit + 1 if p.first else p.draw(st.integers(limit + 1, 2 * limit))
    body = (_cent_grant_text(p, "quota-conformance: too large") + " " * padding).encode()
    _raw_grant_refused(p, body, "application/json", f"a grant body of {len(body):,} bytes (the limit is {limit:,})",
                       "PayloadTooLarge", "a body past the limit")
