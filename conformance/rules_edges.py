"""Rules of the edges every route shares: an unknown route (404), a method a route does not
define (405), a body that is not JSON (415) and one past the limit (413), each answered in
the JSON error envelope the docs promise for all errors.

Registered right after rules_access and rules_me (conformance/runner.py), where these rules
used to live: the registry's order is unchanged.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import strategies as st

from mockserver.contract import CONTRACT, DOCUMENTED
from mockserver.domain.money import MICROS_PER_CENT

from .actions import amount_json, code_text
from .engine import Exchange
from .facts import GRANT
from .properties import Probe
from .registry import Cost, Needs, probe
from .safety import UNUSUAL_METHODS

CENT = MICROS_PER_CENT

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
        p.require(expected.answered(exchange), [exchange],
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
