"""``/_mock/requests``: the request journal through the control API, the dashboard and the
pytest fixture, all through :func:`query_journal` and :func:`record_view`.

A record is presented here, when it is read, never when it is recorded: bodies become text
(undecodable bytes replaced), times ISO 8601 with milliseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from flask import Response, jsonify

from ..domain.errors import BAD_REQUEST, NOT_FOUND, QuotaError
from ..domain.journal import JournalPage, JournalQuery, JournalRecord, RequestJournal, find
from .state import ControlHandler, MockState
from .validation import ValidatedRequest

DEFAULT_PAGE = 100


def list_requests(state: MockState, req: ValidatedRequest) -> Response:
    journal = journal_of(state)
    return jsonify(page_view(journal, query_journal(journal, parse_query(req.query))))


def clear_requests(state: MockState, req: ValidatedRequest) -> Response:
    journal_of(state).clear()
    return jsonify({"requests": [], "next_cursor": None, "capacity": journal_of(state).capacity})


def journal_of(state: MockState) -> RequestJournal:
    if state.journal is None:
        raise QuotaError(NOT_FOUND, "The request journal is off: start quota-mock without --journal-size 0")
    return state.journal


def recent_requests(state: MockState, limit: int) -> list[dict[str, Any]] | None:
    """The newest ``limit`` records as views (the dashboard's panel); None when the journal is off."""
    if state.journal is None:
        return None
    return [record_view(record) for record in query_journal(state.journal, JournalQuery(limit=limit)).records]


def query_journal(journal: RequestJournal, query: JournalQuery) -> JournalPage:
    return find(journal.newest_first(), query)


def parse_query(args: Mapping[str, Any]) -> JournalQuery:
    """The query parameters, already checked against admin-openapi.yaml, as a journal query."""
    status = args.get("status")
    if isinstance(status, str):
        status = status.lower() if status.lower().endswith("xx") else int(status)
    cursor = args.get("cursor")
    return JournalQuery(
        operation_id=args.get("operation_id") or None,
        status=status,
        since=parse_since(args["since"]) if args.get("since") else None,
        before_id=int(cursor) if cursor else None,
        limit=int(args.get("limit", DEFAULT_PAGE)),
    )


_EPOCH_SECONDS = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def parse_since(raw: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC when it names no zone)."""
    text = raw.strip()
    # Plain ASCII decimal seconds only: Python's float() also takes "nan", "inf", "1_000" and
    # other scripts' digits ("\uff11\uff12\uff13"), none of which is epoch seconds ("nan" matched
    # every record).
    if _EPOCH_SECONDS.fullmatch(text):
        seconds = float(text)
        if math.isfinite(seconds):
            return seconds
        raise QuotaError(BAD_REQUEST, f"Invalid parameter 'since': {raw!r} is not a finite number of epoch seconds")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QuotaError(
            BAD_REQUEST, f"Invalid parameter 'since': {raw!r} is neither epoch seconds nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def page_view(journal: RequestJournal, page: JournalPage) -> dict[str, Any]:
    return {
        "requests": [record_view(record) for record in page.records],
        "next_cursor": None if page.next_cursor is None else str(page.next_cursor),
        "capacity": journal.capacity,
    }


def record_view(record: JournalRecord) -> dict[str, Any]:
    """One record as the control API shows it (see ``JournalRecord`` in admin-openapi.yaml)."""
    entry = record.entry
    headers = {header_name(name): value for name, value in sorted(entry.headers)}
    return {
        "id": record.id,
        "at": iso8601_ms(entry.at),
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "operation_id": entry.operation_id,
        "status": entry.status,
        "duration_ms": round(entry.duration_ms, 3),
        "idempotency": entry.idempotency,
        "idempotency_key": headers.get("Idempotency-Key"),
        "problem": entry.problem,
        "dropped": entry.dropped,
        "request": {
            "headers": headers,
            "body": _text(entry.request_body),
            "size": entry.request_size,
            "truncated": len(entry.request_body) < entry.request_size,
        },
        "response": {
            "body": _text(entry.response_body),
            "size": entry.response_size,
            "truncated": len(entry.response_body) < entry.response_size,
        },
    }


def header_name(cgi_name: str) -> str:
    """``HTTP_IDEMPOTENCY_KEY`` (as WSGI spells it) as ``Idempotency-Key``."""
    return cgi_name.removeprefix("HTTP_").replace("_", "-").title()


def iso8601_ms(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


JOURNAL_HANDLERS: MappingProxyType[str, ControlHandler] = MappingProxyType(
    {
        "mockRequests": list_requests,
        "mockClearRequests": clear_requests,
    }
)
