"""The app factory: builds the mock from openapi.yaml and a :class:`MockConfig`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.routing import PathConverter

from ..config import MockConfig
from ..contract import Contract, Operation, default_contract
from ..domain.accounts import Seed
from ..domain.clock import Clock
from ..domain.errors import INVALID_API_KEY, QuotaError
from ..domain.faults import FaultBook
from ..domain.memory_store import MemoryStore
from ..domain.rate_limit import RateLimiter
from ..domain.service import FundingService
from ..domain.store import StateStore
from .cors import install_cors
from .drop import DropConnectionMiddleware
from .errors import register_error_handlers
from .scenarios import before_operation, check_rate_limit, install_extra_headers
from .validation import RequestValidator, ValidatedRequest

EXTENSION_KEY = "quota_mock"
_BEARER = re.compile(r"^Bearer[ ]+(\S+)[ ]*$", re.IGNORECASE)

Handler = Callable[["MockState", ValidatedRequest, "Caller"], Response]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the API key (never logged) and the idempotency scope derived from it."""

    api_key: str | None

    @property
    def scope(self) -> str:
        # Idempotency keys are scoped per API key; a digest keeps raw keys out of the store.
        return hashlib.sha256((self.api_key or "").encode("utf-8", "surrogateescape")).hexdigest()[:24]


@dataclass
class MockState:
    """Everything one mock instance owns; created by :func:`create_app`, never global."""

    config: MockConfig
    contract: Contract
    service: FundingService
    clock: Clock
    faults: FaultBook = field(default_factory=FaultBook)
    rate_limiter: RateLimiter | None = None

    def reset(self, seed: Seed | None = None) -> None:
        """Back to the starting state: balances, ledger, keys and clock, fault rules, rate windows."""
        self.service.reset(seed)
        self.faults.clear()
        if self.rate_limiter is not None:
            self.rate_limiter.reset()


def create_app(config: MockConfig | Mapping[str, Any] | None = None) -> Flask:
    """Build a mock of the Quota Funding API with its own state."""
    if not isinstance(config, MockConfig):
        config = MockConfig.from_mapping(config)
    contract = default_contract()
    clock, store = _build_store(config)
    service = FundingService(store, clock, config.build_seed())
    rate = config.parsed_rate_limit
    state = MockState(
        config=config,
        contract=contract,
        service=service,
        clock=clock,
        rate_limiter=None if rate is None else RateLimiter(rate),
    )

    app = Flask("mockserver")
    app.url_map.converters["anytext"] = AnyTextConverter
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False  # keep the contract's field order, as the docs show it
    app.extensions[EXTENSION_KEY] = state
    register_error_handlers(app, contract, config.max_body_bytes)
    if config.cors_origins:
        install_cors(app, config.cors_origins)
    install_extra_headers(app)
    # "Commit then drop" fault rules hang up below Flask, once the response is built.
    app.wsgi_app = DropConnectionMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    from .handlers import HANDLERS  # the handlers import this module's types

    for operation in contract.operations:
        handler = HANDLERS[operation.operation_id]
        app.add_url_rule(
            flask_rule(operation.path),
            endpoint=operation.operation_id,
            view_func=_make_view(state, operation, handler),
            methods=[operation.method],
        )
    if config.admin_enabled:
        from .admin import admin_blueprint
        from .dashboard import dashboard_routes
        from .faults_api import fault_routes

        admin = admin_blueprint(state)
        fault_routes(admin, state)
        dashboard_routes(admin, state)
        app.register_blueprint(admin)
    if config.validate_responses:
        from .self_check import install_response_self_check

        install_response_self_check(app, contract)
    if config.log_requests:
        from .request_log import install_request_log

        install_request_log(app)
    return app


def _build_store(config: MockConfig) -> tuple[Clock, StateStore]:
    """The configured state store, and the clock that goes with it."""
    if not config.uses_redis:
        return Clock(), MemoryStore(config.idempotency_ttl_seconds, config.max_idempotency_keys)
    from ..domain.redis_clock import RedisClock
    from ..domain.redis_store import DEFAULT_IN_FLIGHT_LEASE_SECONDS, RedisStore

    store = RedisStore(
        config.store,
        prefix=config.store_prefix,
        idempotency_ttl=config.idempotency_ttl_seconds,
        max_idempotency_keys=config.max_idempotency_keys,
        # A held grant must finish well inside its claim's lease, or a retry could credit twice.
        in_flight_lease=DEFAULT_IN_FLIGHT_LEASE_SECONDS + 2 * config.grant_delay_seconds,
        # A restarted mock or another worker keeps the shared state; /_mock/reset replaces it.
        keep_existing_state=True,
    )
    # The clock's offset lives in Redis too, so that moving it moves every worker's clock.
    return RedisClock(store), store


def mock_state(app: Flask) -> MockState:
    return app.extensions[EXTENSION_KEY]


class AnyTextConverter(PathConverter):
    """A path parameter that may hold any character, even an encoded slash or newline.

    The server decodes ``a%2Fb`` and ``a%0Ab`` before routing; such a value must still reach
    its operation and be judged by the contract there (400 or 404 ``user_not_found``), not
    fall through to the unknown-route 404.
    """

    regex = r"[^/](?:.|\n)*?"


def flask_rule(path: str) -> str:
    """The contract's ``/v1/users/{id}/balance`` as a Flask rule."""
    return re.sub(r"\{([^}]+)\}", r"<anytext:\1>", path)


def _make_view(state: MockState, operation: Operation, handler: Handler) -> Callable[..., Response]:
    validator = RequestValidator(operation)
    # The operation's own limit from openapi.yaml; werkzeug answers 413 past it, unread.
    body_limit = operation.max_body_bytes or state.config.max_body_bytes

    def view(**path_args: str) -> Response:
        request.max_content_length = body_limit
        if state.rate_limiter is not None:  # before authentication: floods of bad keys count too
            check_rate_limit(state.rate_limiter, state.clock.now())
        caller = Caller(None if operation.public else authenticate(state.service, request.headers.get("Authorization")))
        before_operation(state.contract, operation, state.faults, state.clock)
        validated = validator.validate(
            path_args,
            request.args,
            request.headers,  # case-insensitive: looked up by the contract's header names
            request.get_data(cache=True),
        )
        return handler(state, validated, caller)

    view.__name__ = operation.operation_id
    return view


def authenticate(service: FundingService, authorization: str | None) -> str:
    """The caller's API key from ``Authorization: Bearer <key>``, or a 401."""
    if not authorization or not authorization.strip():
        raise QuotaError(INVALID_API_KEY, "Missing API key: send Authorization: Bearer <key>")
    match = _BEARER.match(authorization.strip())
    if match is None:
        raise QuotaError(INVALID_API_KEY, "Invalid Authorization header: use the Bearer scheme with your API key")
    key = match.group(1)
    if not service.is_api_key(key):
        raise QuotaError(INVALID_API_KEY, "Invalid API key")
    return key
