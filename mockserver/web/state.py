"""What the web modules share: one mock's state, the caller, and how routes are spelled.

Every module of ``web/`` may import this one; it imports none of them but the validator, so
the app factory (``app.py``) can import them all without a cycle.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response
from flask.typing import ResponseReturnValue
from werkzeug.routing import PathConverter

from ..config import MockConfig
from ..contract import Contract, control_contract, default_contract
from ..domain.accounts import Seed
from ..domain.clock import Clock
from ..domain.errors import INVALID_API_KEY, QuotaError
from ..domain.faults import FaultBook
from ..domain.journal import MemoryJournal, RequestJournal
from ..domain.memory_store import MemoryStore
from ..domain.rate_limit import RateLimiter
from ..domain.service import FundingService
from ..domain.store import StateStore
from .validation import RequestValidator, ValidatedRequest

if TYPE_CHECKING:  # only the Redis store needs it, and it imports redis
    from ..domain.redis_resets import SharedResets

EXTENSION_KEY = "quota_mock"
# How long a starting worker on Redis waits for its reset subscription to be confirmed before
# it reads the run's last reset (redis_resets.SharedResets.catch_up).
CATCH_UP_SECONDS = 5.0
_BEARER = re.compile(r"^Bearer[ ]+(\S+)[ ]*$", re.IGNORECASE)

# A public operation's handler (``handlers.HANDLERS``), and a control API operation's.
Handler = Callable[["MockState", ValidatedRequest, "Caller"], Response]
ControlHandler = Callable[["MockState", ValidatedRequest], ResponseReturnValue]


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
    """Everything one mock instance owns; created by :func:`build_state`, never global."""

    config: MockConfig
    contract: Contract
    service: FundingService
    clock: Clock
    # Every operation's validator, public and control API alike, by operationId: compiled once.
    validators: Mapping[str, RequestValidator] = field(default_factory=dict)
    faults: FaultBook = field(default_factory=FaultBook)
    rate_limiter: RateLimiter | None = None
    journal: RequestJournal | None = None  # None: the request journal is off
    # A deliberate wait inside a request (a held grant, a simulated latency): see _holder.
    hold: Callable[[float], None] = time.sleep
    # On Redis: resets announced to, and adopted from, the other workers and instances.
    shared_resets: SharedResets | None = None

    def reset(self, seed: Seed | None = None) -> None:
        """Back to the starting state: balances, ledger, keys and clock, fault rules, rate
        windows, and an empty request journal; on Redis, in every worker before it returns."""
        self.service.reset(seed)
        self._clear_local_rules()
        if self.journal is not None:
            self.journal.clear()
        if self.shared_resets is not None:
            self.shared_resets.announce(self.service.seed.as_json())

    def adopt_shared_reset(self, seed: dict[str, Any] | None) -> None:
        """Another worker reset the shared store to ``seed``: serve that seed (API keys, prices,
        the developer), and clear this process' own fault rules and rate windows."""
        if seed is not None:
            self.service.adopt_seed(Seed.from_json(seed))
        self._clear_local_rules()

    def close(self) -> None:
        """Let go of the store's connections and stop listening for other workers' resets."""
        if self.shared_resets is not None:
            self.shared_resets.close()
        close_store = getattr(self.service.store, "close", None)
        if close_store is not None:
            close_store()

    def _clear_local_rules(self) -> None:
        self.faults.clear()
        if self.rate_limiter is not None:
            self.rate_limiter.reset()


def build_state(config: MockConfig) -> MockState:
    """A fresh mock's state: the store and clock the configuration names, loaded with its seed."""
    clock, store = _build_store(config)
    rate = config.parsed_rate_limit
    contract = default_contract()
    operations = (*contract.operations, *control_contract().operations)
    journal = _build_journal(config, store)
    hold = _holder(journal)
    state = MockState(
        config=config,
        contract=contract,
        service=FundingService(
            store, clock, config.build_seed(), sleep=hold, enforce_billing_mode=config.enforce_billing_mode
        ),
        clock=clock,
        validators={op.operation_id: RequestValidator(op) for op in operations},
        rate_limiter=None if rate is None else RateLimiter(rate),
        journal=journal,
        hold=hold,
    )
    if config.uses_redis:
        from ..domain.redis_resets import SharedResets

        state.shared_resets = SharedResets(
            config.store, config.store_prefix, state.adopt_shared_reset, run_id=config.run_id
        )
        # A worker of a run that started after one of its siblings announced a reset (see
        # redis_resets.py): serve that reset's seed from the first request on.
        state.shared_resets.catch_up(state.adopt_shared_reset, CATCH_UP_SECONDS)
    return state


def _holder(journal: RequestJournal | None) -> Callable[[float], None]:
    """How a request waits on purpose: its journal first lets readers go on without its record
    (on Redis a reader would otherwise wait for the id the request reserved), then it sleeps."""
    if journal is None:
        return time.sleep

    def hold(seconds: float) -> None:
        journal.pause()
        time.sleep(seconds)

    return hold


def _build_store(config: MockConfig) -> tuple[Clock, StateStore]:
    """The configured state store, and the clock that goes with it."""
    if not config.uses_redis:
        return Clock(), MemoryStore(config.idempotency_ttl_seconds, config.max_idempotency_keys)
    # Imported only when asked for: the memory store needs no Redis client.
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


def _build_journal(config: MockConfig, store: StateStore) -> RequestJournal | None:
    """The request journal: in this process, or in Redis next to the state it describes."""
    if config.journal_size == 0:
        return None
    if not config.uses_redis:
        return MemoryJournal(config.journal_size)
    from ..domain.redis_journal import RedisJournal
    from ..domain.redis_store import RedisStore

    # On the store's link: a record's id rides with the request's own commands.
    link = store.link if isinstance(store, RedisStore) else None
    return RedisJournal(config.store, prefix=config.store_prefix, capacity=config.journal_size, link=link)


def mock_state(app: Flask) -> MockState:
    """The state of the mock ``app`` serves (tests and the pytest plugin reach it this way)."""
    return app.extensions[EXTENSION_KEY]


class AnyTextConverter(PathConverter):
    """A path parameter that may hold any character, even an encoded slash or newline.

    The server decodes ``a%2Fb`` and ``a%0Ab`` before routing; such a value must still reach
    its operation and be judged by the contract there (400 or 404 ``user_not_found``), not
    fall through to the unknown-route 404. That holds for an id that starts with a slash too
    (``%2Fabc``): the contract grants to "/abc", so its path form must read it. Only an empty
    id (``/v1/users//balance``) names no user: the unknown-route 404.
    """

    regex = r"(?:.|\n)+?"
    # Werkzeug guesses from a "/" in the regex whether a value may span path segments; say it.
    part_isolating = False


ANY_TEXT_CONVERTER = "anytext"


def flask_rule(path: str) -> str:
    """A contract's ``/v1/users/{id}/balance`` as a Flask rule: the control API's too, so that it
    reaches every user id the public routes reach (an encoded slash included)."""
    return re.sub(r"\{([^}]+)\}", rf"<{ANY_TEXT_CONVERTER}:\1>", path)


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None when the header is not that.

    HTTP auth schemes are case-insensitive and may be followed by several spaces (RFC 9110,
    section 11): ``bearer KEY`` and ``Bearer  KEY`` carry the same key as ``Bearer KEY``.
    """
    if not authorization:
        return None
    match = _BEARER.match(authorization.strip())
    return None if match is None else match.group(1)


def authenticate(service: FundingService, authorization: str | None) -> str:
    """The caller's API key from ``Authorization: Bearer <key>``, or a 401."""
    if not authorization or not authorization.strip():
        raise QuotaError(INVALID_API_KEY, "Missing API key: send Authorization: Bearer <key>")
    key = bearer_token(authorization)
    if key is None:
        raise QuotaError(INVALID_API_KEY, "Invalid Authorization header: use the Bearer scheme with your API key")
    if not service.is_api_key(key):
        raise QuotaError(INVALID_API_KEY, "Invalid API key")
    return key
