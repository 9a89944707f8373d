"""The dashboard at ``/_mock/``: the mock's state for people, with forms to change it.

Server-rendered (Jinja2, Flask's templates), no front-end build step. The live part of the
page is re-rendered by ``/_mock/dashboard.json`` and swapped in by a few lines of inline
script, so balances move while an app makes requests; the forms sit outside that part, so
that what someone is typing is never replaced. Forms are plain HTML posts to routes below
that call the service and redirect back (post/redirect/get) with a message.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, redirect, render_template, request

from ..domain.clock import iso8601
from ..domain.errors import BAD_REQUEST, QuotaError
from ..domain.money import MoneyError, dollars_to_micros, format_money, parse_dollar_string
from ..domain.usage import USAGE_WINDOW_DAYS
from .admin import ADMIN_TOKEN_COOKIE, _entry, _snapshot
from .faults_api import add_rule, fault_view
from .handlers import request_fingerprint
from .state import Caller, MockState
from .validation import RequestValidator

_SHOWN_ROWS = 50  # per table: the page stays readable, the JSON API has the rest
# The page refreshes every second: past this many entries it stops replaying the whole
# ledger for the conservation check each time (GET /_mock/state still does).
_CONSERVATION_CHECK_MAX_ENTRIES = 100_000
_AMOUNT = re.compile(r"^\s*\$?(\d{1,9}(?:\.\d{1,6})?)\s*$")
POLL_MILLISECONDS = 1000


def dashboard_routes(admin: Blueprint, state: MockState) -> None:
    grant_validator = RequestValidator(state.contract.by_id["grantUserBalance"])

    @admin.get("/")
    def dashboard() -> Response:
        token = request.args.get("token")
        if token is not None and request.cookies.get(ADMIN_TOKEN_COOKIE) != token:
            # Checked by the blueprint already; keep it in a cookie and drop it from the URL.
            response = redirect("/_mock/", code=303)
            response.set_cookie(ADMIN_TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/_mock")
            return response
        return Response(
            render_template(
                "dashboard.html",
                live=_render_live(state),
                operations=sorted(state.contract.by_id),
                error_statuses=_error_statuses(state),
                api_key_hint=state.service.seed.api_keys[0][:9] + "…",
                message=request.args.get("done"),
                error=request.args.get("error"),
                poll_ms=POLL_MILLISECONDS,
            ),
            mimetype="text/html",
        )

    @admin.get("/dashboard.json")
    def dashboard_json() -> Response:
        html = _render_live(state)
        body = {"version": hashlib.sha256(html.encode()).hexdigest()[:16], "html": html, "state": _snapshot(state)}
        return Response(json.dumps(body), mimetype="application/json")

    @admin.post("/dashboard/grant")
    def form_grant() -> Response:
        return _after_form(lambda: _grant(state, grant_validator))

    @admin.post("/dashboard/balance")
    def form_balance() -> Response:
        return _after_form(lambda: _set_balance(state))

    @admin.post("/dashboard/reset")
    def form_reset() -> Response:
        def reset() -> str:
            state.reset()
            return "Reset to the starting state"

        return _after_form(reset)

    @admin.post("/dashboard/clock")
    def form_clock() -> Response:
        return _after_form(lambda: _move_clock(state))

    @admin.post("/dashboard/faults")
    def form_fault() -> Response:
        def add() -> str:
            fields = {k: v for k, v in request.form.items() if v.strip()}
            rule = add_rule(state, fields)
            return f"Added {rule.id}: {rule.action} on {rule.operation_id}"

        return _after_form(add)

    @admin.post("/dashboard/faults/clear")
    def form_clear_faults() -> Response:
        def clear() -> str:
            state.faults.clear()
            return "Cleared every fault rule"

        return _after_form(clear)


def _after_form(action: Any) -> Response:
    """Run a form's action; back to the dashboard with its outcome (post/redirect/get)."""
    _refuse_cross_site()
    try:
        outcome = {"done": action()}
    except QuotaError as exc:
        outcome = {"error": f"{exc.code}: {exc.message}"}
    return redirect("/_mock/?" + urlencode(outcome), code=303)


def _refuse_cross_site() -> None:
    # A form post needs no preflight: without this, any web page open in the same browser
    # could reset or fund the mock. Browsers send Origin on every form post.
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise QuotaError(BAD_REQUEST, f"Cross-site form post from {origin} refused: use the dashboard itself")


def _grant(state: MockState, validator: RequestValidator) -> str:
    form = request.form
    amount = _AMOUNT.match(form.get("amount", ""))
    if amount is None:
        raise QuotaError(BAD_REQUEST, "Invalid field 'amount': write dollars, e.g. 0.50")
    body: dict[str, Any] = {"external_user_id": form.get("external_user_id", "").strip()}
    if form.get("description", "").strip():
        body["description"] = form["description"].strip()
    # The amount goes in as the JSON number typed, so the contract judges it as the API would.
    raw = json.dumps(body)[:-1] + f', "amount": {amount.group(1)}}}'
    key = form.get("idempotency_key", "").strip()
    validated = validator.validate({}, {}, {"idempotency-key": key} if key else {}, raw.encode())
    caller = Caller(state.service.seed.api_keys[0])  # as the first API key, like the docs' examples
    result = state.service.grant(
        scope=caller.scope,
        idempotency_key=key or None,
        fingerprint=request_fingerprint("POST /v1/funding/grant", validated.body),
        user_id=validated.body["external_user_id"],
        amount=dollars_to_micros(validated.body["amount"]),
        description=validated.body.get("description"),
    )
    replay = " (replayed: this Idempotency-Key was used before)" if result.duplicate else ""
    return f"Granted {format_money(result.amount)} to {result.external_user_id}{replay}"


def _set_balance(state: MockState) -> str:
    user = request.form.get("external_user_id", "").strip()
    try:
        micros = parse_dollar_string(request.form.get("balance", ""))
    except MoneyError as exc:
        raise QuotaError(BAD_REQUEST, f"Invalid field 'balance': {exc}") from exc
    state.service.set_balance(user or None, micros)
    return f"Set {user or 'the grant pool'} to {format_money(micros)}"


def _move_clock(state: MockState) -> str:
    if request.form.get("reset"):
        state.clock.reset()
        return "Clock back to real time"
    raw = request.form.get("advance_seconds", "").strip()
    if not re.fullmatch(r"-?\d{1,9}", raw):
        raise QuotaError(BAD_REQUEST, "Invalid field 'advance_seconds': a whole number of seconds, e.g. 86400")
    state.clock.advance(int(raw))
    return f"Clock moved by {int(raw)} s, now {iso8601(state.clock.now())}"


def _error_statuses(state: MockState) -> list[str]:
    statuses = {s for op in state.contract.operations for s in op.responses if op.error_codes(s)}
    return sorted(statuses)


def _render_live(state: MockState) -> str:
    service = state.service
    now = state.clock.now()
    users = sorted(service.store.users().items())
    ledger_count = service.store.ledger_size()
    keys = service.store.idempotency_keys(now)
    usage = service.usage()
    pool = service.developer_balance()
    return render_template(
        "_live.html",
        now=iso8601(now),
        clock_offset=round(state.clock.offset),
        pool=format_money(pool),
        conservation=(
            service.conservation().holds if ledger_count <= _CONSERVATION_CHECK_MAX_ENTRIES else None
        ),
        users=[(uid, format_money(balance)) for uid, balance in users[:_SHOWN_ROWS]],
        user_count=len(users),
        ledger=[_entry(e) for e in reversed(service.store.ledger_tail(_SHOWN_ROWS))],
        ledger_count=ledger_count,
        keys=[
            {"key": k.key, "state": k.state, "expires_at": iso8601(k.expires_at), "ledger_id": k.ledger_id}
            for k in keys[:_SHOWN_ROWS]
        ],
        key_count=len(keys),
        usage=usage,
        usage_days=USAGE_WINDOW_DAYS,
        spend=format_money(usage.spend),
        grant_total=format_money(usage.grant_total),
        faults=[fault_view(rule) for rule in state.faults.rules(now)],
        rate_limit=state.rate_limiter.rate.describe() if state.rate_limiter else None,
    )
