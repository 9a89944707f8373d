"""The dashboard at ``/_mock/``: the mock's state for people, with forms to change it.

Server-rendered (Jinja2, Flask's templates), no front-end build step. The live part of the
page is re-rendered by ``/_mock/dashboard.json`` and swapped in by a few lines of inline
script, so balances move while an app makes requests; the forms sit outside that part, so
that what someone is typing is never replaced. Forms are plain HTML posts to routes below
that call the control API's commands (``control.py``), or the public grant itself, so that a
form does exactly what its JSON route does, then redirect back (post/redirect/get).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from types import MappingProxyType
from urllib.parse import urlencode

from flask import Response, redirect, render_template, request

from ..domain.clock import iso8601
from ..domain.errors import QuotaError
from ..domain.money import format_money, micros_to_decimal
from ..domain.usage import USAGE_WINDOW_DAYS
from . import control
from .admin import ADMIN_TOKEN_COOKIE
from .control_presenters import fault_view, idempotency_key_view, ledger_entry_view, snapshot
from .handlers import apply_grant
from .journal_api import recent_requests
from .request_log import redact_key
from .state import Caller, ControlHandler, MockState
from .validation import ValidatedRequest

_SHOWN_ROWS = 50  # per table: the page stays readable, the JSON API has the rest
# The page refreshes every second: past this many entries it stops replaying the whole
# ledger for the conservation check each time (GET /_mock/state still does).
_CONSERVATION_CHECK_MAX_ENTRIES = 100_000
POLL_MILLISECONDS = 1000


def dashboard(state: MockState, req: ValidatedRequest) -> Response:
    token = req.query.get("token")
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
            api_key_hint=redact_key(state.service.seed.api_keys[0]),
            message=req.query.get("done"),
            error=req.query.get("error"),
            poll_ms=POLL_MILLISECONDS,
        ),
        mimetype="text/html",
    )


def dashboard_data(state: MockState, req: ValidatedRequest) -> Response:
    html = _render_live(state)
    body = {"version": hashlib.sha256(html.encode()).hexdigest()[:16], "html": html, "state": snapshot(state)}
    return Response(json.dumps(body), mimetype="application/json")


def form_grant(state: MockState, req: ValidatedRequest) -> Response:
    def grant() -> str:
        form = request.form
        fields = ("external_user_id", "description")
        document = {name: form[name].strip() for name in fields if form.get(name, "").strip()}
        # Dollars as people type them ("1.50", "$1.50"), read by the kit's one money parser;
        # then the contract judges the amount exactly as it judges the API's JSON number.
        document["amount"] = micros_to_decimal(control.dollars_field(form.get("amount", ""), "amount"))
        key = form.get("idempotency_key", "").strip()
        validated = state.validators["grantUserBalance"].validate_document(
            {}, {}, {"idempotency-key": key} if key else {}, document
        )
        # As the first API key, like the docs' examples; held for --grant-delay like any grant.
        result = apply_grant(state, validated, Caller(state.service.seed.api_keys[0]))
        replay = " (replayed: this Idempotency-Key was used before)" if result.duplicate else ""
        return f"Granted {format_money(result.amount)} to {result.external_user_id}{replay}"

    return _after_form(grant)


def form_balance(state: MockState, req: ValidatedRequest) -> Response:
    def set_balance() -> str:
        user = request.form.get("external_user_id", "").strip() or None
        micros = control.set_balance(state, user, {"balance": request.form.get("balance", "")})
        return f"Set {user or 'the grant pool'} to {format_money(micros)}"

    return _after_form(set_balance)


def form_reset(state: MockState, req: ValidatedRequest) -> Response:
    def reset() -> str:
        control.reset(state)
        return "Reset to the starting state"

    return _after_form(reset)


def form_clock(state: MockState, req: ValidatedRequest) -> Response:
    def move() -> str:
        document = state.validators["mockMoveClock"].form_document(request.form)
        control.move_clock(state, document)
        if document.get("reset") is True:
            return "Clock back to real time"
        moved = format(Decimal(document["advance_seconds"]).normalize(), "f")  # an int when whole
        return f"Clock moved by {moved} s, now {iso8601(state.clock.now())}"

    return _after_form(move)


def form_fault(state: MockState, req: ValidatedRequest) -> Response:
    def add() -> str:
        rule = control.add_fault(state, state.validators["mockAddFault"].form_document(request.form))
        return f"Added {rule.id}: {rule.action} on {rule.operation_id}"

    return _after_form(add)


def form_clear_faults(state: MockState, req: ValidatedRequest) -> Response:
    def clear() -> str:
        state.faults.clear()
        return "Cleared every fault rule"

    return _after_form(clear)


def _after_form(action: Callable[[], str]) -> Response:
    """Run a form's action; back to the dashboard with its outcome (post/redirect/get)."""
    # Cross-site posts never get here: the control API's guard (cors.py) refuses them.
    try:
        outcome = {"done": action()}
    except QuotaError as exc:
        outcome = {"error": f"{exc.code}: {exc.message}"}
    return redirect("/_mock/?" + urlencode(outcome), code=303)


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
        ledger=[ledger_entry_view(e) for e in reversed(service.store.ledger_tail(_SHOWN_ROWS))],
        ledger_count=ledger_count,
        keys=[idempotency_key_view(k) for k in keys[:_SHOWN_ROWS]],
        key_count=len(keys),
        usage=usage,
        usage_days=USAGE_WINDOW_DAYS,
        spend=format_money(usage.spend),
        grant_total=format_money(usage.grant_total),
        faults=[fault_view(rule) for rule in state.faults.rules(now)],
        rate_limit=state.rate_limiter.rate.describe() if state.rate_limiter else None,
        requests=recent_requests(state, _SHOWN_ROWS),
    )


DASHBOARD_HANDLERS: MappingProxyType[str, ControlHandler] = MappingProxyType(
    {
        "mockDashboard": dashboard,
        "mockDashboardData": dashboard_data,
        "mockDashboardGrant": form_grant,
        "mockDashboardSetBalance": form_balance,
        "mockDashboardReset": form_reset,
        "mockDashboardClock": form_clock,
        "mockDashboardAddFault": form_fault,
        "mockDashboardClearFaults": form_clear_faults,
    }
)
