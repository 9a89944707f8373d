"""The schema-driven phase: edge inputs, Schemathesis' coverage cases and Hypothesis-generated
cases for every operation (:mod:`conformance.case_sources`), judged by Schemathesis' checks and
the suite's own, a failure on a request the docs do not plainly cover being the contract's call
(:mod:`conformance.judging`).

**Budgeted by time.** The phase has ``--fuzz-time`` seconds. Operations take turns, one request
each, so that whatever stops the phase (its time, the run's ``--time-limit`` or
``--max-requests``) has given every operation its share. Each operation sends its edge inputs,
then its coverage cases, then generated cases: ``--max-examples`` per mode, or, without it,
batch after batch until the time is spent. Whatever the phase planned and could not send is
reported as not explored, operation by operation: a run never passes quietly on half the
contract.

**Safe.** Generated cases are rewritten before they are sent (the guard then checks again):
- the real key replaces a generated ``Authorization`` value (a missing one stays missing);
- user ids become users of this run: ``PREFIX`` + a random suffix + the generated text, so
  their shape is still explored (a number or boolean becomes a plain run user);
- a valid grant amount becomes one cent; an invalid one that could still credit something is
  sent only if the budget covers it, read generously;
- generated Idempotency-Keys are replaced (an example key could be a real one);
- chats bill a never-funded user of this run, never the developer;
- in read-only mode only GET operations are generated.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests
from schemathesis import GenerationMode
from schemathesis.checks import ignored_auth
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.case import Case
from schemathesis.generation.meta import REQUEST_SHAPE_PROBES, ComponentInfo

from mockserver.contract import Operation
from mockserver.domain.money import MICROS_PER_DOLLAR

from . import case_sources
from .builtin_checks import GENERATED_CASE_CHECKS
from .edges import EDGE_ON_PATH
from .engine import ALL_RESPONSE_CHECKS, PASSED, Exchange, Target
from .facts import CHAT, GRANT, USER_CHAT, AmountLimits, operation_of
from .judging import judge
from .plain import broken
from .safety import LimitReached, RequestRefused, potential_credit

ONE_CENT = 0.01
# The user field of a grant, and the parameters that name a user (the guard reads the same name).
USER_FIELD = "external_user_id"
# Generated cases per operation and mode in each batch when --max-examples is not given.
BATCH = 8


@dataclass
class Exploration:
    """What the phase did for one operation."""

    operation: str
    sent: Counter[str] = field(default_factory=Counter)  # by source
    not_sent: Counter[str] = field(default_factory=Counter)  # by reason
    finished: list[str] = field(default_factory=list)  # sources done (first round)
    unfinished: list[str] = field(default_factory=list)  # sources started or planned, not done
    more_available: list[str] = field(default_factory=list)  # finite sources with cases left at the end
    batches: int = 0

    @property
    def complete(self) -> bool:
        return not self.unfinished


class Fuzzer:
    def __init__(self, target: Target) -> None:
        self.t = target
        self.not_sent: Counter[str] = Counter()
        self.sent = 0
        self.stopped: str | None = None
        self.seconds = 0.0
        self.explorations: list[Exploration] = []
        self._deadline = float("inf")
        # The user generated chats bill (None: a fresh never-funded user per chat), and the
        # users this run's grants funded, seen from the start (the probes run first).
        self.chat_user: str | None = None
        self.chat_user_origin = ""
        self.funded: list[str] = []
        target.session.observers.append(self._observe_grant)
        # A generated chat refused as the account's billing mode allows is no failure.
        self._judge = functools.partial(judge, billing_mode=target.billing_mode)
        config = target.schema.config.checks
        # A grant may meet an empty pool (402) and a chat a user unknown or broke (404/402).
        config.positive_data_acceptance.expected_statuses = ["2xx", "401", "402", "403", "404", "409", "429", "5xx"]
        # Invalid input may also be refused with any 4xx the contract defines (413 for an oversized body).
        listed = {str(status) for status in target.contract.error_codes().values() if 400 <= status < 500}
        defaults = config.negative_data_rejection.expected_statuses or []
        config.negative_data_rejection.expected_statuses = sorted({*defaults, *listed})

    # -- the phase ---------------------------------------------------------------------

    def run(self) -> None:
        t, options = self.t, self.t.options
        started = time.monotonic()
        self._deadline = started + options.fuzz_seconds
        operations = [op for op in t.contract.operations if op.method == "GET" or not options.read_only]
        if not options.read_only and options.chat:
            self.chat_user, self.chat_user_origin = self._funded_chat_user()
        plans = [_Plan(self, op, t.schema[op.path][op.method]) for op in operations]
        self.explorations = [plan.record for plan in plans]
        active = deque(plans)
        try:
            while active and not self.stopped:
                plan = active.popleft()
                item = plan.next()
                if item is None:
                    continue
                self._one(plan.record, *item)
                active.append(plan)
        finally:
            self.seconds = time.monotonic() - started
            for plan in plans:
                plan.close()
        if options.read_only:
            t.results.note("schema.negative_data", "GET operations only (read-only)")

    def _funded_chat_user(self) -> tuple[str | None, str]:
        """A user of this run with a balance, for generated chats to bill: the code behind
        billing (pricing, max_tokens, the completion) runs only for a known user. Its balance
        caps what the chats spend. One cent is granted when the budget allows; otherwise a user
        the probes funded is reused; otherwise chats go to never-funded users (a 404 or 402
        before that code, on most servers)."""
        t = self.t
        if t.guard.affordable(potential_credit(ONE_CENT)):
            user = t.guard.new_user()
            with contextlib.suppress(RequestRefused):
                answer = t.send(GRANT, headers={"Idempotency-Key": t.guard.new_idempotency_key()},
                                body={USER_FIELD: user, "amount": ONE_CENT})
                if answer.status == HTTPStatus.OK:
                    return user, "granted one cent"
        if self.funded:
            return self.funded[-1], "funded by a probe"
        return None, "none: chats go to never-funded users (no budget left; raise --budget)"

    def _observe_grant(self, request: Any, response: Any) -> None:
        if response.status_code != HTTPStatus.OK or (request.method or "").upper() != "POST":
            return
        operation = self.t.facts.post_operation(unquote(urlsplit(request.url or "").path))
        if operation is None or operation[0] != GRANT:
            return
        try:
            user = json.loads(response.content).get(USER_FIELD)
        except (ValueError, AttributeError):
            return
        # Generated chats name this user in a header too: the identity rules' awkward ids are
        # not reused.
        if self.t.guard.owns(user) and header_safe(user):
            self.funded.append(user)

    def time_up(self) -> bool:
        if self.stopped:
            return True
        if time.monotonic() >= self._deadline:
            self.stopped = f"time budget spent ({self.t.options.fuzz_seconds:g} s; raise --fuzz-time)"
        elif self.t.guard.seconds_left <= 0:
            self.stopped = f"time bound reached ({self.t.options.time_limit_seconds:g} s; raise --time-limit)"
        return self.stopped is not None

    @property
    def unexplored(self) -> list[Exploration]:
        return [record for record in self.explorations if not record.complete]

    def _one(self, record: Exploration, source: str, case: Case) -> None:
        reason = self.make_safe(case)
        if reason:
            self._not_sent(record, reason)
            return
        try:
            response = self.t.call(case)
        except LimitReached as limit:
            self.stopped = str(limit)
            record.not_sent["limit"] += 1
            return
        except RequestRefused as refused:
            self._not_sent(record, str(refused).split(":")[0])
            return
        except requests.RequestException as exc:  # a slow or dropped answer judges nothing
            self._not_sent(record, f"no answer ({type(exc).__name__})")
            return
        self.sent += 1
        record.sent[source] += 1
        checks = [*ALL_RESPONSE_CHECKS, *GENERATED_CASE_CHECKS]
        if case.method.upper() == "GET":
            checks.append(ignored_auth)  # it re-sends the request without a key: only for GETs
        limited = self.t.guard.stats.rate_limited

        def judge_this_case(check: str, failure: Any, exchange: Any) -> Any:
            if check == ignored_auth.__name__ and self.t.guard.stats.rate_limited > limited:
                # Its own request without a key was still refused for now (429, or 503 with
                # Retry-After) after the retries: the key check never judged it.
                return PASSED
            return self._judge(check, failure, exchange)

        try:
            self.t.check_response(Exchange(case, response), checks, judge=judge_this_case)
        except LimitReached as limit:  # a check's own request (ignored_auth's) met the bound
            self.stopped = str(limit)

    def _not_sent(self, record: Exploration, reason: str) -> None:
        self.not_sent[reason] += 1
        record.not_sent[reason] += 1

    # -- making a generated case safe ------------------------------------------------------

    def make_safe(self, case: Case) -> str | None:
        """Rewrite ``case`` so that sending it is safe; or say why it must not be sent."""
        t = self.t
        headers = dict(case.headers or {})
        for name in list(headers):
            if name.lower() == "authorization":
                headers[name] = t.auth_header["Authorization"]
            elif name.lower() == "idempotency-key":
                headers[name] = _fresh_key_like(t.guard.new_idempotency_key(), headers[name])
        operation_id = case.operation.definition.raw.get("operationId")
        if operation_id == CHAT:
            headers[t.facts.user_header] = self.chat_user or t.guard.new_user()
        if headers != dict(case.headers or {}):
            case.headers = headers
        # A chat bills the funded user, unless the case explores the shape of the path's user id.
        funded = quote(self.chat_user, safe="") if operation_id == USER_CHAT and self.chat_user else None
        users = {name: funded if funded and not _explores_path(case) else self.run_user(value, encode=True)
                 for name, value in (case.path_parameters or {}).items() if name == USER_FIELD}
        if users:
            case.path_parameters = {**case.path_parameters, **users}
        if isinstance(case.query, dict) and USER_FIELD in case.query:
            case.query = {**case.query, USER_FIELD: self.run_user(case.query[USER_FIELD])}
        if operation_id == USER_CHAT and not users:
            path = {p["name"]: t.guard.new_user() for p in t.facts.operation(USER_CHAT).parameters
                    if p.get("in") == "path"}
            case.path_parameters = {**(case.path_parameters or {}), **path}
        refused = self._safe_grant(case) if operation_id == GRANT and isinstance(case.body, dict) else None
        if users or USER_FIELD in (case.query or {}):
            _revalidate_parameters(case, operation_of(case))
        return refused

    def run_user(self, value: Any, encode: bool = False) -> str:
        """A user of this run with the generated id's shape kept after the prefix (a path
        value arrives percent-encoded already: only the prefix is encoded then)."""
        user = self.t.guard.new_user()
        if encode:
            user = quote(user, safe="")
        return user + value if isinstance(value, str) else user

    def _safe_grant(self, case: Case) -> str | None:
        body = dict(case.body)
        user = body.get(USER_FIELD)
        if isinstance(user, str | int | float | bool):
            body[USER_FIELD] = self.run_user(user)
        amount = body.get("amount")
        if _valid_amount(amount, self.t.facts.amount_limits):
            body["amount"] = ONE_CENT
        credit = potential_credit(body.get("amount"))
        if credit and not self.t.guard.affordable(credit):
            return "budget"
        case.body = body
        return None


class _Plan:
    """One operation's cases, source after source, generated only when their turn comes."""

    def __init__(self, fuzzer: Fuzzer, operation: Operation, api_operation: Any) -> None:
        self.fuzzer = fuzzer
        self.operation = operation
        self.api_operation = api_operation
        self.record = Exploration(api_operation.label)
        self.record.unfinished = list(fuzzer.t.options.fuzz_sources)
        self._queue: deque[str] = deque(self.record.unfinished)
        self._source = ""
        self._current: Iterator[Case] | None = None
        self._seen: set[str] = set()
        self._new_in_batch = 0
        self._generated_dry = False  # a batch found no input not sent before
        # Schemathesis' coverage cases, kept open across batches (a large schema has thousands).
        self._coverage: Iterator[Case] | None = None
        self._coverage_done = False

    def next(self) -> tuple[str, Case] | None:
        fuzzer = self.fuzzer
        while not fuzzer.time_up():
            if self._current is None:
                if not self._queue and not self._next_batch():
                    return None
                self._source = self._queue.popleft()
                self._current = self._open(self._source)
            case = next(self._current, None)
            if case is None:
                self._finish()
                continue
            if self._source in case_sources.GENERATED and not self._fresh(case):
                continue
            return self._source, case
        return None

    def close(self) -> None:
        self._current = None
        if self._coverage is not None and not self._coverage_done:
            self.record.more_available.append("coverage")

    def _open(self, source: str) -> Iterator[Case]:
        fuzzer, options = self.fuzzer, self.fuzzer.t.options
        if source == "edges":
            return case_sources.edges(self.api_operation, self.operation, fuzzer.t.contract)
        if source == "coverage":
            if self._coverage is None:
                self._coverage = self._flag_end(case_sources.coverage(self.api_operation))
            if options.max_examples is not None:
                return self._coverage  # counted by examples: all of them, as stock `st run` sends them
            return itertools.islice(self._coverage, case_sources.COVERAGE_CHUNK)
        count = options.max_examples or BATCH
        seed = case_sources.batch_seed(options.seed, self.record.operation, source, self.record.batches)
        return iter(case_sources.generated(self.api_operation, source, count, seed, fuzzer.time_up))

    def _finish(self) -> None:
        if self._source in self.record.unfinished and not self.fuzzer.time_up():
            self.record.unfinished.remove(self._source)
            self.record.finished.append(self._source)
        self._current = None

    def _next_batch(self) -> bool:
        """Another batch, when the phase is budgeted by time alone: the next coverage cases, and
        generated cases while the last batch still found inputs not sent before."""
        options = self.fuzzer.t.options
        if options.max_examples is not None:
            return False
        self._generated_dry = self._generated_dry or self._new_in_batch == 0
        self._new_in_batch = 0
        if self._coverage is not None and not self._coverage_done:
            self._queue.append("coverage")
        if not self._generated_dry:
            self._queue.extend(s for s in case_sources.GENERATED if s in options.fuzz_sources)
        if self._queue:
            self.record.batches += 1
        return bool(self._queue)

    def _flag_end(self, cases: Iterator[Case]) -> Iterator[Case]:
        yield from cases
        self._coverage_done = True

    def _fresh(self, case: Case) -> bool:
        key = _fingerprint(case)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._new_in_batch += 1
        return True


def _explores_path(case: Case) -> bool:
    meta = case.meta
    return meta is not None and (meta.phase.data.description or "").startswith(EDGE_ON_PATH)


def _revalidate_parameters(case: Case, operation: Operation) -> None:
    """Whether the path and query are still valid after a user id was rewritten, judged on
    the decoded text (Schemathesis would judge a path value by its percent-encoding)."""
    meta = case.meta
    if meta is None:
        return
    errors = broken(operation, case)
    for location, container, prefix in ((ParameterLocation.PATH, case.path_parameters, "path parameter"),
                                        (ParameterLocation.QUERY, case.query, "query parameter")):
        if location in meta.components:
            negative = any(error.where.startswith(prefix) for error in errors)
            meta.components[location] = ComponentInfo(mode=GenerationMode.NEGATIVE if negative
                                                      else GenerationMode.POSITIVE)
            meta.update_validated_hash(location, case._hash_container(container))
            meta.clear_dirty(location)
    scenario = getattr(meta.phase.data, "scenario", None)
    if meta.components and scenario not in REQUEST_SHAPE_PROBES:
        positive = all(info.mode.is_positive for info in meta.components.values())
        meta.generation.mode = GenerationMode.POSITIVE if positive else GenerationMode.NEGATIVE


def _fingerprint(case: Case) -> str:
    headers = {k.lower(): v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    body = case.body if isinstance(case.body, dict | list | str | int | float | bool) or case.body is None else repr(
        case.body)
    return json.dumps([case.method, case.path_parameters, case.query, headers, body], sort_keys=True, default=repr)


def _valid_amount(amount: Any, limits: AmountLimits) -> bool:
    """An amount within the contract's limits (GrantRequest.amount), read exactly: the decimal
    the JSON number spells, never a binary float's arithmetic (which cannot overflow either)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return False
    try:
        value = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)
    except InvalidOperation:
        return False
    if not value.is_finite() or not 0 < value <= Decimal(limits.maximum) / MICROS_PER_DOLLAR:
        return False
    micros = value * MICROS_PER_DOLLAR
    return micros == micros.to_integral_value() and limits.allows(int(micros))


def header_safe(user: Any) -> bool:
    """Whether a user id travels in an HTTP header as it is: printable ASCII, no edge spaces
    (http.client encodes header values as latin-1, and a decomposed accent is not)."""
    return isinstance(user, str) and user.isascii() and user.isprintable() and user == user.strip()


def _fresh_key_like(fresh: str, generated: object) -> str:
    """A key of this run (never one a past run or a real client used) as long as the generated
    one: lengths at and past the contract's limit still reach the target (a VARCHAR(255)
    that overflows into a 500), while the fresh prefix keeps it unique."""
    if isinstance(generated, str) and len(generated) > len(fresh):
        return fresh + generated[len(fresh):]
    return fresh
