"""The run's shared machinery: building Schemathesis cases, sending them through the guarded
session, running the response checks, and turning failures into classified findings."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case

from mockserver.contract import DOCUMENTED, Contract, Operation

from . import builtin_checks
from .checks import ContractViolation, json_body
from .facts import BALANCE, CHAT, ContractFacts, attach
from .options import Options
from .profiles import severity
from .registry import REGISTRY
from .report import curl_command
from .results import Finding, Results
from .safety import GuardedSession, RequestRefused, SafetyGuard

CheckFunction = Callable[..., Any]
# (check name, failure, exchange) -> a re-judged failure, PASSED to drop it, or None to keep it.
Judge = Callable[[str, Failure, "Exchange"], Any]
PASSED = object()
# Run on every response the suite receives: Schemathesis' response checks, then the suite's own.
RETRIED_KEPT = 8  # refusals kept per request for the checks (the session retries a few times at most)
ALL_RESPONSE_CHECKS: tuple[CheckFunction, ...] = (*builtin_checks.RESPONSE_CHECKS, *REGISTRY.response_checks())
_NO_BODY = object()
# An operation that lists no responses: its expected codes are the global ones.
_NO_OPERATION = Operation(operation_id="", method="", path="", spec={}, parameters=(), body_schema=None,
                          body_required=False, public=False)


@dataclass
class Exchange:
    """One request and its answer (``case`` is None for a request outside the contract's
    operations, such as an unknown route)."""

    case: Case | None
    response: Response

    @property
    def label(self) -> str:
        """The operation, as reports name it: ``GET /v1/balance``."""
        if self.case is not None:
            return str(self.case.operation.label)
        request = self.response.request
        return f"{request.method} {urlsplit(request.url or '').path}"

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def ok(self) -> bool:
        """A success: any 2xx. The docs state no success status (the seed lists error codes
        only), so a 201 where openapi.yaml says 200 is the contract's call, which the
        schema-driven phase reports, not a refusal for the rules to fail on."""
        return 200 <= self.response.status_code < 300

    @property
    def json(self) -> Any:
        return json_body(self.response)

    def field(self, *names: str) -> Any:
        node = self.json
        for name in names:
            node = node.get(name) if isinstance(node, dict) else None
        return node

    def header(self, name: str) -> str | None:
        for key, values in self.response.headers.items():
            if key.lower() == name.lower():
                return values[0] if isinstance(values, list) and values else values
        return None

    @property
    def error_code(self) -> Any:
        return self.field("error", "code")


class _GuardedTransport:
    """Schemathesis' transport, forced onto the guarded session.

    Some built-in checks send probes of their own (``ignored_auth`` re-sends a request
    without its key) and deliberately drop the caller's session; this keeps every request
    Schemathesis sends behind the safety guard all the same.
    """

    def __init__(self, inner: Any, session: GuardedSession) -> None:
        self._inner = inner
        self._session = session

    def send(self, case: Case, **kwargs: Any) -> Response:
        kwargs.pop("app", None)
        kwargs["session"] = self._session
        return self._inner.send(case, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def load_schema(base_url: str, session: GuardedSession, facts: ContractFacts) -> Any:
    """Schemathesis' view of the contract, its checks judging by ``facts``, its requests guarded."""
    # An explicit default config: a schemathesis.toml in the working directory (the kit ships
    # one for stock `st run`) must not change what the suite sends or expects.
    schema = schemathesis.openapi.from_dict(copy.deepcopy(facts.contract.document), config=schemathesis.Config())
    schema.config.update(base_url=base_url)
    attach(schema, facts)
    guarded = _GuardedTransport(schema.transport, session)
    schema.__class__ = type("GuardedSchema", (type(schema),), {"transport": property(lambda _self: guarded)})
    return schema


class Target:
    """The deployment under test, as the checks see it."""

    def __init__(self, options: Options, session: GuardedSession, results: Results,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        # How the run waits (--retention-check); a test moves a mock's clock instead.
        self.sleep = sleep
        # Work a probe leaves for the end of the probes (a replay after others' keys).
        self.deferred: list[tuple[str, Callable[[], None]]] = []
        self.session = session
        self.guard: SafetyGuard = session.guard
        self.results = results
        # One contract for the whole run: the guard's, which the checks also judge by.
        self.facts: ContractFacts = self.guard.facts
        self.contract: Contract = self.facts.contract
        self.provenance = self.facts.provenance
        self.base_url = options.target_url
        self.schema = load_schema(self.base_url, session, self.facts)
        self._local = threading.local()
        # Answers the session retried (429, or 503 with Retry-After) are judged too: a server's
        # rate limiter answering an HTML page would otherwise never meet a check.
        session.observers.append(self._keep_retried)
        # Every ledger_id a new grant (200, duplicate false) answered in this run, and its user.
        self.ledger_owners: dict[str, Any] = {}
        # The model the run's chats name: --chat-model, until the deployment refuses it as an
        # unknown model; then the next one openapi.yaml shows (see actions.user_chat).
        self.chat_model = options.chat_model
        examples = self.contract.by_id[CHAT].body_schema["properties"]["model"].get("examples", [])
        self._other_models = [m for m in examples if isinstance(m, str) and m != options.chat_model]
        self._model_lock = threading.Lock()
        # Chats and grants answered "unavailable" so far (conformance.actions.UnavailableTally).
        self.unavailable: dict[str, Any] = {}
        self._billing_mode_lock = threading.Lock()
        self._billing_mode: tuple[str | None] | None = None  # read once: (the mode,)

        @self.schema.hook
        def after_validate(context: Any, case: Case, response: Response, results: Any) -> None:
            self._local.results = list(results)

    # -- building and sending --------------------------------------------------------

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.options.api_key}"}

    def operation(self, operation_id: str) -> Operation:
        return self.contract.by_id[operation_id]

    def case(self, operation_id: str, *, path: dict[str, Any] | None = None, query: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None, body: Any = _NO_BODY, auth: bool = True,
             raw_body: bytes | None = None) -> Case:
        op = self.operation(operation_id)
        api_operation = self.schema[op.path][op.method]
        all_headers = {**(self.auth_header if auth else {}), **(headers or {})}
        # Quoted here, every character but the unreserved ones: Schemathesis leaves '%' and '/'
        # as they are, and a user id may hold both (sent as %25 and %2F, read back as sent).
        quoted = {name: quote(str(value), safe="") for name, value in (path or {}).items()}
        kwargs: dict[str, Any] = {"path_parameters": quoted, "query": query or {}, "headers": all_headers}
        if raw_body is not None:
            kwargs["body"] = raw_body
            kwargs["media_type"] = "application/json"
        elif body is not _NO_BODY:
            kwargs["body"] = body
            kwargs["media_type"] = "application/json"
        return api_operation.Case(**kwargs)

    def call(self, case: Case) -> Response:
        """Send one case through the guarded session (raises RequestRefused if the guard says no)."""
        # Schemathesis leaves a case's own Accept header out of the request it builds (the
        # session's */* goes instead): handed over again here, a rule's Accept is sent.
        accept = {k: v for k, v in (case.headers or {}).items() if k.lower() == "accept"}
        # The session's own timeout too: Schemathesis' default (10 s) would cut a slow answer short.
        return case.call(base_url=self.base_url, session=self.session, headers=accept or None,
                         timeout=self.options.request_timeout_seconds)

    def billing_mode(self) -> str | None:
        """The account's billing mode, as GET /v1/balance says it (``billing_mode``), read once
        and only when asked (see :mod:`conformance.billing_mode`); None when it says none."""
        with self._billing_mode_lock:
            if self._billing_mode is None:
                mode = None
                with contextlib.suppress(RequestRefused, OSError, ValueError):
                    response = self.call(self.case(BALANCE))
                    body = json_body(response) if response.status_code == 200 else None
                    mode = body.get("billing_mode") if isinstance(body, dict) else None
                self._billing_mode = (mode if isinstance(mode, str) else None,)
            return self._billing_mode[0]

    def model_after_refusal(self, refused: str) -> str | None:
        """The model to name instead of ``refused``, which the deployment refused as unknown (the
        docs name no model): the run switches to the next openapi.yaml shows. None: none left."""
        with self._model_lock:
            if refused == self.chat_model:
                if not self._other_models:
                    return None
                self.chat_model = self._other_models.pop(0)
            return self.chat_model

    def defer(self, rule: str, work: Callable[[], None]) -> None:
        """Run ``work`` (recording ``rule``'s verdicts) once every probe has run."""
        self.deferred.append((rule, work))

    def raw(self, method: str, path: str, headers: dict[str, str | None] | None = None, data: bytes | None = None
            ) -> Exchange:
        """Send a request outside the contract's operations (an unknown route, a wrong method,
        a body that is not JSON); the path is sent as given (already quoted). The response
        checks do not apply to it."""
        response = self.session.request(method, self.base_url + path, data=data,
                                        headers={**self.auth_header, **(headers or {})})
        self._local.retried = []  # its refusals are outside the contract's operations too
        return Exchange(None, Response.from_requests(response, verify=True))

    def send(self, operation_id: str, **kwargs: Any) -> Exchange:
        """Build, send and check one request of a scenario."""
        case = self.case(operation_id, **kwargs)
        exchange = Exchange(case, self.call(case))
        self.check_response(exchange, ALL_RESPONSE_CHECKS)
        return exchange

    # -- checking ----------------------------------------------------------------------

    def _keep_retried(self, request: Any, response: Any) -> None:
        if response.status_code in (429, 503):
            kept = getattr(self._local, "retried", None)
            if kept is None:
                kept = self._local.retried = []
            if len(kept) < RETRIED_KEPT:
                kept.append(response)

    def _retried_before(self, final: Response) -> list[Response]:
        """The refusals this thread's last request met before ``final`` (the session retried them)."""
        kept, self._local.retried = getattr(self._local, "retried", None) or [], []
        return [Response.from_requests(r, verify=True) for r in kept
                if (r.status_code, r.content) != (final.status_code, final.content)]

    def check_response(self, exchange: Exchange, checks: Sequence[CheckFunction],
                       explicit_auth: bool = True, judge: Judge | None = None) -> None:
        """Run ``checks`` on one answer and record each verdict; ``judge`` may re-read a
        failure first (the schema-driven phase's, see :mod:`conformance.judging`). The
        refusals the session retried before it are checked as answers of their own."""
        for retried in self._retried_before(exchange.response):
            self._check_one(Exchange(exchange.case, retried), ALL_RESPONSE_CHECKS, explicit_auth, None)
        self._check_one(exchange, checks, explicit_auth, judge)

    def _check_one(self, exchange: Exchange, checks: Sequence[CheckFunction], explicit_auth: bool,
                   judge: Judge | None) -> None:
        case, response = exchange.case, exchange.response
        self._local.results = []
        headers = dict(case.headers or {})
        explicit = {k: v for k, v in headers.items() if k.lower() == "authorization"} if explicit_auth else {}
        # Each failure arrives through the after_validate hook, with the name of its check.
        with contextlib.suppress(schemathesis.errors.FailureGroup):
            case.validate_response(
                response,
                checks=list(checks),
                headers=explicit or None,
                transport_kwargs={"session": self.session, "base_url": self.base_url},
            )
        for result in self._local.results:
            # The judge reads Schemathesis' own check name; results are kept under the rule's id.
            rule = REGISTRY.by_check_name(result.name).name
            failure = result.failure
            if failure is not None and judge is not None:
                judged = judge(result.name, failure, exchange)
                failure = None if judged is PASSED else judged or failure
            if failure is not None and self.route_missed(exchange):
                self.results.ran(rule)  # not this operation's answer: nothing to hold it to
            elif failure is None:
                self.results.ran(rule)
            else:
                self.report(rule, failure, [exchange])

    def route_missed(self, exchange: Exchange) -> bool:
        """A generated path parameter so invalid that it missed the route, answered by the
        global 404 (``x-quota-global-responses``), as Schemathesis itself allows for."""
        meta = exchange.case.meta
        if meta is None or not meta.is_negative_at(ParameterLocation.PATH):
            return False
        glob = self.contract.global_responses.get(str(exchange.status))
        return glob is not None and exchange.error_code in self.provenance.expected_codes(
            _NO_OPERATION, exchange.status)

    def report(self, check: str, failure: Failure, exchanges: Iterable[Exchange],
               provenance: str | None = None) -> None:
        exchanges = list(exchanges)
        if provenance is None:
            provenance = self.classify(check, failure, exchanges[-1]) if exchanges else DOCUMENTED
        self.results.add(
            Finding(
                check=check,
                operation=failure.operation or "",
                title=failure.title,
                message=failure.message,
                severity=severity(provenance, self.options.profile),
                provenance=provenance,
                curl=tuple(curl_command(e.response.request, self.options.api_key) for e in exchanges),
            )
        )

    def violation(self, check: str, exchanges: Sequence[Exchange], title: str, message: str,
                  provenance: str = DOCUMENTED, operation: str | None = None) -> None:
        """Record a scenario's finding."""
        label = operation or (exchanges[-1].label if exchanges else "")
        self.report(check, ContractViolation(operation=label, title=title, message=message, provenance=provenance),
                    exchanges, provenance)

    def registry_provenance(self, rule: str) -> str:
        return REGISTRY[rule].provenance

    def classify(self, check: str, failure: Failure, exchange: Exchange) -> str:
        """documented or contract: which kind of openapi.yaml element this failure breaks.

        A failure of the suite's own checks says so itself; otherwise the rule's classifier
        reads it from the element broken, and a rule without one has its own provenance."""
        if isinstance(failure, ContractViolation):
            return failure.provenance
        rule = REGISTRY[check]
        if rule.classify is None:
            return rule.provenance
        return rule.classify(self.provenance, failure, exchange)
