"""The proxy's judge: each relayed exchange, held to the contract by the suite's own rules.

Every exchange of a contract operation gets the checks the active suite runs on every
response it receives (Schemathesis' and the suite's: schema, status, envelope, error codes,
money strings, grant arithmetic), through the suite's own :class:`~conformance.engine.Target`,
so that a finding is classified and reported exactly as the suite would; then the stateful
rules that traffic alone can prove (:mod:`.traffic_rules`). A new finding is printed as one
line when it is found. The judge also counts which operations and documented statuses the
traffic exercised.

Judging happens on one thread, off the requests' threads, in the order exchanges completed:
the client has its answer before its exchange is judged.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import requests
from schemathesis.core.transport import Response

from mockserver.contract import Operation

from .. import runner  # noqa: F401 - registers every rule of the suite, in report order
from ..engine import ALL_RESPONSE_CHECKS, Exchange, Target
from ..options import Options, Profile
from ..registry import REGISTRY
from ..report import Summary, as_json
from ..results import Results
from ..safety import GuardedSession, SafetyGuard
from .observed import ObservedExchange
from .traffic_rules import RULES as TRAFFIC_RULES
from .traffic_rules import Seen, TrafficRules, user_of

# What the judge puts in place of a caller's key in the requests it keeps: reproductions
# (curl commands) then read the key from $QUOTA_API_KEY, and no caller's key is ever kept.
CALLER_KEY = "quota-proxy-caller-key"
_USERS_REMEMBERED = 10_000
_TOUCHES_PER_USER = 32


class Judge:
    def __init__(self, upstream: str, profile: Profile, say: Callable[[str], None] = print) -> None:
        self.upstream = upstream.rstrip("/")
        self.options = Options(api_key=CALLER_KEY, base_url=self.upstream, profile=profile)
        self.results = Results(REGISTRY)
        # The suite's view of the deployment; it never sends anything from here.
        self.target = Target(self.options, GuardedSession(SafetyGuard(self.options)), self.results)
        self.traffic = TrafficRules(self.target)
        self.coverage = Coverage(self.target.contract.operations)
        self.judged_rules = [r.name for r in REGISTRY if _check_of(r) in ALL_RESPONSE_CHECKS or r.name in TRAFFIC_RULES]
        self._routes = [(op, _route_pattern(op.path)) for op in self.target.contract.operations]
        self._say = say
        self._printed: Counter[str] = Counter()  # findings printed, per rule
        self._started = time.monotonic()
        self._lock = threading.Lock()  # one judgment at a time; reports wait for it
        self._touches: OrderedDict[str, list[list[float]]] = OrderedDict()  # user -> [started, ended]
        self._queue: queue.Queue[ObservedExchange] = queue.Queue()
        threading.Thread(target=self._work, name="quota-proxy-judge", daemon=True).start()

    # -- what the forwarding side calls ----------------------------------------------------

    def begin(self, observed: ObservedExchange) -> None:
        """An exchange started: until it ends, it overlaps whatever touches the same user."""
        match = self.route(observed)
        user = user_of(match[0].operation_id, match[1], observed) if match else None
        if user is not None:
            with self._lock:
                touches = self._touches.setdefault(user, [])
                touches.append([observed.started, float("inf")])
                del touches[:-_TOUCHES_PER_USER]
                self._touches.move_to_end(user)
                if len(self._touches) > _USERS_REMEMBERED:
                    self._touches.popitem(last=False)

    def observe(self, observed: ObservedExchange) -> None:
        """An exchange ended (called in the order they end): judge it, off this thread."""
        self._queue.put(observed)

    def drain(self) -> None:
        """Wait until every exchange handed over so far is judged."""
        self._queue.join()

    # -- judging ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            observed = self._queue.get()
            try:
                with self._lock:
                    self.judge(observed)
            except Exception as exc:  # a judge's bug must not stop the proxy; say it and go on
                self._say(
                    f"quota-conformance proxy: could not judge {observed.method} {observed.path}: "
                    f"{type(exc).__name__}: {exc}"
                )
            finally:
                self._queue.task_done()

    def judge(self, observed: ObservedExchange) -> None:
        match = self.route(observed)
        self.coverage.add(match[0].operation_id if match else None, observed.status)
        user = user_of(match[0].operation_id, match[1], observed) if match else None
        overlapping = self._end_touch(user, observed) if user is not None else False
        if match is None or observed.status is None or not observed.complete:
            return
        operation, path_parameters = match
        exchange = Exchange(self._case(operation, path_parameters, observed), self._response(observed))
        self.target.check_response(exchange, ALL_RESPONSE_CHECKS)
        seen = Seen(observed, exchange, operation.operation_id, path_parameters, time.monotonic())
        self.traffic.observe(seen, overlapping)
        self._print_new_findings()

    def route(self, observed: ObservedExchange) -> tuple[Operation, dict[str, str]] | None:
        """The contract operation a request is, with its path parameters (decoded)."""
        method = "GET" if observed.method == "HEAD" else observed.method
        for operation, pattern in self._routes:
            if operation.method == method:
                found = pattern.fullmatch(observed.path)
                if found:
                    return operation, {name: unquote(value) for name, value in found.groupdict().items()}
        return None

    def _end_touch(self, user: str, observed: ObservedExchange) -> bool:
        """Close this exchange's interval; whether another one on the same user overlapped it."""
        overlapping = False
        for touch in self._touches.get(user, []):
            if touch[0] == observed.started:
                touch[1] = observed.ended
            elif touch[0] < observed.ended and touch[1] > observed.started:
                overlapping = True
        return overlapping

    def _case(self, operation: Operation, path_parameters: dict[str, str], observed: ObservedExchange) -> Any:
        kwargs: dict[str, Any] = {
            "path_parameters": path_parameters,
            "query": observed.query,
            "headers": dict(observed.request_headers),
        }
        if observed.request_body:
            try:  # Schemathesis' own view of the body: plain JSON, as it would have generated it
                kwargs["body"] = json.loads(observed.request_body)
            except (ValueError, UnicodeDecodeError):
                kwargs["body"] = observed.request_body
            kwargs["media_type"] = observed.request_header("Content-Type") or "application/json"
        return self.target.schema[operation.path][operation.method].Case(**kwargs)

    def _response(self, observed: ObservedExchange) -> Response:
        headers = [(name, value.replace("$QUOTA_API_KEY", CALLER_KEY)) for name, value in observed.request_headers]
        request = requests.Request(
            observed.method, observed.upstream_url, headers=dict(headers), data=observed.request_body or None
        ).prepare()
        grouped: dict[str, list[str]] = {}
        for name, value in observed.response_headers:
            grouped.setdefault(name, []).append(value)
        return Response(
            status_code=observed.status or 0,
            headers=grouped,
            content=observed.response_body,
            request=request,
            elapsed=observed.elapsed,
            verify=True,
            message=observed.reason,
        )

    def _print_new_findings(self) -> None:
        for name, record in self.results.records.items():
            for finding in record.findings[self._printed[name] :]:
                message = " ".join(finding.message.split())
                self._say(
                    f"VIOLATION {finding.severity.value} {name} {finding.operation}: {finding.title}: "
                    f"{message} ({finding.provenance})"
                )
            self._printed[name] = len(record.findings)

    # -- reports ---------------------------------------------------------------------------

    def summary(self) -> Summary:
        self.drain()
        with self._lock:
            records = [self.results.records[name] for name in self.judged_rules]
            return Summary(
                target=self.upstream,
                profile=self.options.profile.value,
                read_only=False,
                records=records,
                elapsed_seconds=time.monotonic() - self._started,
                requests_sent=0,
                budget_total_micros=0,
                budget_reserved_micros=0,
                notes=[
                    f"validation proxy: {self.coverage.exchanges} exchanges relayed, "
                    f"{self.coverage.unmatched} outside the contract's operations, "
                    f"{self.coverage.unanswered} without an answer"
                ],
            )

    def report(self) -> dict[str, Any]:
        """The running report: the suite's JSON report, plus what the traffic covered."""
        summary = self.summary()
        document: dict[str, Any] = json.loads(as_json(summary, CALLER_KEY))
        document["coverage"] = self.coverage.view()
        return document


class Coverage:
    """Which operations, and which of their documented statuses, the traffic exercised."""

    def __init__(self, operations: tuple[Operation, ...] | list[Operation]) -> None:
        self.documented = {op.operation_id: sorted(int(s) for s in op.responses if s.isdigit()) for op in operations}
        self.seen: Counter[tuple[str, int]] = Counter()
        self.exchanges = self.unmatched = self.unanswered = 0

    def add(self, operation_id: str | None, status: int | None) -> None:
        self.exchanges += 1
        if status is None:
            self.unanswered += 1
        elif operation_id is None:
            self.unmatched += 1
        else:
            self.seen[(operation_id, status)] += 1

    def view(self) -> dict[str, Any]:
        operations = {}
        for operation_id, statuses in self.documented.items():
            seen = {status: n for (op, status), n in self.seen.items() if op == operation_id}
            operations[operation_id] = {
                "documented": {str(status): seen.get(status, 0) for status in statuses},
                "undocumented": {str(status): n for status, n in sorted(seen.items()) if status not in statuses},
            }
        pairs = [(op, status) for op, statuses in self.documented.items() for status in statuses]
        return {
            "operations_exercised": sum(1 for op in self.documented if any(o == op for o, _ in self.seen)),
            "operations": len(self.documented),
            "statuses_exercised": sum(1 for pair in pairs if self.seen[pair]),
            "statuses_documented": len(pairs),
            "exchanges": self.exchanges,
            "outside_the_contract": self.unmatched,
            "without_an_answer": self.unanswered,
            "by_operation": operations,
        }


def _check_of(rule: Any) -> Any:
    # The response check a rule runs: ``check`` in the registry of rules as properties,
    # ``function`` before it (both spellings while the suite's registry is being reworked).
    return getattr(rule, "check", None) or getattr(rule, "function", None)


def _route_pattern(path: str) -> re.Pattern[str]:
    # Parameters are matched as the request carries them, still percent-encoded: one segment each.
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))
