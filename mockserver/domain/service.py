"""The Quota Funding service: what each API operation does, over a state store.

Each method is one call from a thin web handler. Atomicity lives in the store; this layer
composes steps (claim an idempotency key, then grant) and keeps failures from leaking state.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .accounts import Seed, wrong_billing_endpoint
from .clock import Clock
from .completions import ChatOptions, FakeCompletion, Message, complete
from .errors import BAD_REQUEST, QuotaError, UserNotFound
from .records import ChargeResult, Conservation, GrantRequest, GrantResult, LedgerEntry
from .store import StateStore
from .usage import Overview, UsageSummary


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    completion: FakeCompletion
    charge: ChargeResult
    created: float


class FundingService:
    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        seed: Seed,
        sleep: Callable[[float], None] = time.sleep,
        enforce_billing_mode: bool = False,
    ) -> None:
        self.store = store
        # Refuse a chat on the endpoint the account's billing mode does not bill (off: both serve).
        self.enforce_billing_mode = enforce_billing_mode
        self.clock = clock
        self._initial_seed = seed
        self.seed = seed
        # How a grant is held in flight (``processing_delay``); tests may replace it.
        self.sleep = sleep
        store.load(seed, clock.now())

    # -- authentication ---------------------------------------------------------------

    def is_api_key(self, candidate: str) -> bool:
        """Constant-time comparison against every configured key, so timing leaks nothing."""
        candidate_bytes = candidate.encode("utf-8", "surrogateescape")
        matched = False
        for key in self.seed.api_keys:
            matched |= hmac.compare_digest(candidate_bytes, key.encode("utf-8"))
        return matched

    # -- state control (the /_mock API and the pytest fixture) -------------------------

    def reset(self, seed: Seed | None = None) -> None:
        """Back to the starting seed (or a new one); the clock returns to real time. The seed
        is served only once the store holds it: a store that refused the load (Redis away)
        leaves this worker on the old seed, not on API keys no other worker serves."""
        chosen = seed or self._initial_seed
        # The seed's deposits are stamped at real time, where the clock returns; the clock moves
        # only once the store holds the seed. A store that keeps the clock (Redis) returns it
        # within the load itself, one step: a refused load leaves both as they were.
        self.store.load(chosen, time.time())
        if not self.clock.offset_kept_by(self.store):
            self.clock.reset()
        self.seed = chosen

    def adopt_seed(self, seed: Seed) -> None:
        """Serve ``seed`` (its API keys, prices and developer) without loading it into the store:
        another worker sharing the store has just loaded it there."""
        self.seed = seed

    def set_balance(self, user_id: str | None, amount: int) -> LedgerEntry:
        if amount < 0:
            raise QuotaError(BAD_REQUEST, "balance must not be negative")
        who = "grant pool" if user_id is None else f"user {user_id}"
        return self.store.set_balance(user_id, amount, self.clock.now(), f"control API: set {who} balance")

    def conservation(self) -> Conservation:
        return self.store.conservation()

    # -- the public API ---------------------------------------------------------------

    def grant(
        self,
        *,
        scope: str,
        idempotency_key: str | None,
        fingerprint: bytes,
        user_id: str,
        amount: int,
        description: str | None,
        processing_delay: float = 0.0,
    ) -> GrantResult:
        """Grant ``amount`` micro-dollars from the pool to ``user_id``, at most once per key.

        ``processing_delay`` holds the request in flight before it applies (latency faults),
        which is also when a second request with the same key meets ``in_flight``. Without
        one, the store claims the key, grants and records the result in one step.
        """
        if processing_delay <= 0:
            request = GrantRequest(scope, idempotency_key, fingerprint, user_id, amount, description)
            return self.store.grant(request, self.clock)
        if idempotency_key is None:
            self._hold(processing_delay)
            return self.store.apply_grant(user_id, amount, description, self.clock.now(), None)
        replay = self.store.claim_idempotency_key(scope, idempotency_key, fingerprint, self.clock.now())
        if replay is not None:
            return replace(replay, duplicate=True)
        try:
            self._hold(processing_delay)
            return self.store.apply_grant(user_id, amount, description, self.clock.now(), (scope, idempotency_key))
        except BaseException:
            # Only successes are stored (the contract's choice): free the key for a retry.
            self.store.release_idempotency_key(scope, idempotency_key)
            raise

    def user_balance(self, user_id: str) -> int:
        balance = self.store.user_balance(user_id)
        if balance is None:
            raise UserNotFound()
        return balance

    def developer_balance(self) -> int:
        return self.store.pool_balance()

    def chat(
        self,
        user_id: str | None,
        model: str,
        messages: Sequence[Message],
        max_tokens: int | None,
        options: ChatOptions | None = None,
    ) -> ChatOutcome:
        """Answer and charge one completion (every choice of it); the user (``None``: the developer) pays."""
        if self.enforce_billing_mode:
            wrong = wrong_billing_endpoint(self.seed.developer.billing_mode, user_billed=user_id is not None)
            if wrong is not None:
                raise QuotaError(BAD_REQUEST, wrong)
        if user_id is not None:
            self.user_balance(user_id)  # 404 before any cost is worked out
        completion = complete(model, messages, max_tokens, options)
        cost = self.seed.prices.cost(model, completion.prompt_tokens, completion.completion_tokens)
        now = self.clock.now()
        charge = self.store.apply_charge(
            user_id, cost, model, completion.prompt_tokens, completion.completion_tokens, now
        )
        return ChatOutcome(completion, charge, now)

    def usage(self) -> UsageSummary:
        """The last 30 days' usage, kept by the store as money moves (never a ledger scan)."""
        return self.store.overview(self.clock).usage

    def overview(self) -> Overview:
        """The pool and the 30-day usage together, as ``GET /v1/me`` shows them."""
        return self.store.overview(self.clock)

    def _hold(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)
