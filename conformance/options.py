"""The suite's settings, parsed and checked in this one place (the CLI only maps flags here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mockserver.domain.money import MoneyError, parse_dollar_string

DEFAULT_PREFIX = "conformance-"
DEFAULT_BUDGET = "0.10"
IN_PROCESS_URL = "http://quota.in-process"
DEFAULT_FUZZ_SECONDS = 8.0
FUZZ_SOURCES = ("edges", "coverage", "positive", "negative")


class Profile(StrEnum):
    # Fails only on what the vendor documents; the contract's own choices are warnings.
    DOCUMENTED = "documented"
    # Fails on every violation of openapi.yaml.
    STRICT = "strict"


class OptionsError(ValueError):
    """A setting that cannot work; the CLI turns it into exit code 2."""


def parse_budget(text: str) -> int:
    """A ``--budget`` in micro-dollars, parsed by the kit's one exact money parser: an amount
    finer than a micro-dollar is refused, never silently truncated."""
    try:
        micros = parse_dollar_string(text)
    except MoneyError as exc:
        raise OptionsError(f"--budget: {exc}") from exc
    if micros < 0:
        raise OptionsError(f"--budget must not be negative, not {text!r}")
    return micros


@dataclass(frozen=True)
class Options:
    api_key: str
    base_url: str | None = None
    profile: Profile = Profile.DOCUMENTED
    read_only: bool = False
    # The most the run may grant in total, in micro-dollars (default $0.10).
    budget_micros: int = parse_budget(DEFAULT_BUDGET)
    user_prefix: str = DEFAULT_PREFIX
    # The schema-driven phase's time budget, in seconds; it takes turns between operations.
    fuzz_seconds: float = DEFAULT_FUZZ_SECONDS
    # Generated cases per operation and mode; None: batch after batch until fuzz_seconds is spent.
    max_examples: int | None = None
    # Where the schema-driven phase's requests come from (conformance.case_sources), in order.
    fuzz_sources: tuple[str, ...] = FUZZ_SOURCES
    seed: int = 0
    # Hard bounds on the whole run (None: no bound on the number of requests).
    max_requests: int | None = None
    time_limit_seconds: float = 300.0
    request_timeout_seconds: float = 30.0
    # 429 handling: retries, and the longest Retry-After the suite is willing to wait.
    max_retries_on_429: int = 7  # 1 + 2 + ... + 64 s without Retry-After: a per-minute window passes
    max_retry_after_seconds: float = 60.0
    # The 402 check drains a tiny grant with chats; these bound it.
    chat: bool = True
    chat_model: str = "gpt-4o"
    max_drain_chats: int = 5
    concurrent_requests: int = 3
    # Run the schema-driven (Schemathesis) phase; the rules' probes always run.
    fuzz: bool = True
    # A second key of the same account: Idempotency-Keys are scoped per API key.
    second_api_key: str | None = None
    # Also send PUT, PATCH and DELETE (to check the 405 envelope); off by default.
    unusual_methods: bool = False
    # Wait this long within the run, then replay a grant's key (0: no wait).
    retention_check_seconds: float = 0.0
    # Replay the keys the previous run saved here, and save this run's for the next.
    state_file: str | None = None
    # Run only these rules (ids, or families such as "idem"); empty: all.
    rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "profile", Profile(self.profile))
        except ValueError as exc:
            raise OptionsError(f"unknown profile {self.profile!r}: documented or strict") from exc

    def checked(self) -> Options:
        if not self.api_key or not self.api_key.strip():
            raise OptionsError("an API key is required: --api-key or the QUOTA_API_KEY environment variable")
        if any(ch.isspace() for ch in self.api_key):
            raise OptionsError("the API key must not contain whitespace")
        prefix = self.user_prefix
        if not prefix or len(prefix) > 64 or any(ch.isspace() or ord(ch) < 32 for ch in prefix):
            raise OptionsError("--user-prefix must be 1 to 64 printable characters without spaces")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise OptionsError(f"--base-url must start with http:// or https://, not {self.base_url!r}")
        if self.max_examples is not None and not 1 <= self.max_examples <= 1000:
            raise OptionsError("--max-examples must be 1 to 1000")
        unknown = set(self.fuzz_sources) - set(FUZZ_SOURCES)
        if unknown or not self.fuzz_sources:
            raise OptionsError(f"--fuzz-sources: a comma-separated choice of {', '.join(FUZZ_SOURCES)}")
        if self.fuzz_seconds <= 0:
            raise OptionsError("--fuzz-time must be positive")
        if self.max_requests is not None and self.max_requests < 10:
            raise OptionsError("--max-requests must be at least 10")
        if self.time_limit_seconds <= 0:
            raise OptionsError("--time-limit must be positive")
        if self.concurrent_requests < 2:
            raise OptionsError("--concurrent-requests must be at least 2")
        if self.max_drain_chats < 1:
            raise OptionsError("--max-drain-chats must be at least 1")
        if self.second_api_key is not None:
            if not self.second_api_key.strip() or any(ch.isspace() for ch in self.second_api_key):
                raise OptionsError("--second-api-key must be a key without whitespace")
            if self.second_api_key == self.api_key:
                raise OptionsError("--second-api-key must differ from the API key")
        if self.retention_check_seconds < 0:
            raise OptionsError("--retention-check must not be negative")
        return self

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every key the reports must never show."""
        return tuple(key for key in (self.api_key, self.second_api_key) if key)

    def selects(self, rule: str) -> bool:
        """Whether ``rule`` is among those ``--rule`` chose (all when none was given)."""
        return not self.rules or any(rule == r or rule.startswith(r + ".") for r in self.rules)

    @property
    def target_url(self) -> str:
        return (self.base_url or IN_PROCESS_URL).rstrip("/")
