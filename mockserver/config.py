"""The mock's configuration, parsed and checked in this one place.

The CLI, the pytest plugin and ``create_app`` all build a :class:`MockConfig`; nothing else
reads the environment or command-line options, and every rule a configuration must follow
is checked here (the command's own, such as workers and threads, included). Each default
is written once, here. The CLI hands its configuration to the server's worker processes
through one environment variable, read back here.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .contract import default_contract
from .domain.accounts import Seed
from .domain.faults import MAX_LATENCY_MS
from .domain.idempotency import DEFAULT_MAX_KEYS, DEFAULT_TTL_SECONDS
from .domain.journal import DEFAULT_BODY_LIMIT, DEFAULT_CAPACITY, MAX_CAPACITY
from .domain.money import MoneyError, dollars_to_micros, format_money
from .domain.rate_limit import RateLimit, RateLimitError
from .domain.redis_scripts import DEFAULT_PREFIX as DEFAULT_STORE_PREFIX
from .domain.seed import SeedError, api_key_problem, build_seed, parse_seed_text, read_seed_file

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_STORE = "memory"
# Threads per server worker when grants are held in flight (grant_delay_seconds): one held
# request must not stall the rest. On the memory store one thread is fastest: Python threads
# only contend for the GIL. On Redis a request waits for Redis' reply (its journal record is
# not waited for: redis_journal.py) with the GIL released, and other threads run requests
# meanwhile: on two cores 3 threads served more grants than 2 or 4 (measured by hand).
HOLDING_THREADS = 8
REDIS_THREADS = 3


# How quota-mock passes its configuration to the worker processes of its server.
CONFIG_ENVIRONMENT_VARIABLE = "QUOTA_MOCK_CONFIG"


class ConfigError(ValueError):
    """A configuration that cannot work; the message says which setting and why."""


def default_seed_document() -> dict[str, Any]:
    text = resources.files("mockserver").joinpath("default_seed.yaml").read_text(encoding="utf-8")
    return parse_seed_text(text, source="default seed")


@dataclass(frozen=True)
class MockConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # API keys to accept instead of the seed's (the default seed's is the docs' demo key).
    api_keys: tuple[str, ...] = ()
    # A seed file (JSON or YAML) or a seed document; either replaces parts of the default.
    seed_file: str | None = None
    seed: Mapping[str, Any] | None = None
    # The grant pool in dollars, overriding the seed's.
    pool: str | None = None
    # The body limit of requests outside openapi.yaml (the control API); the public API's
    # operations take theirs from the contract (x-quota-body-limit).
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    idempotency_ttl_seconds: float = DEFAULT_TTL_SECONDS
    max_idempotency_keys: int = DEFAULT_MAX_KEYS
    # Check every response against openapi.yaml (openapi-core); meant for tests.
    validate_responses: bool = False
    # Seconds a grant is held in flight before it applies: for testing client retries.
    grant_delay_seconds: float = 0.0
    # Refuse a chat on the endpoint the account's billing mode does not bill, as the vendor
    # does (400 "wrong billing endpoint"); off, the mock serves both whatever its mode.
    enforce_billing_mode: bool = False
    # Milliseconds between the events of a streamed chat, as a model's tokens arrive: for
    # testing a UI that renders a stream, or stops one (a request's Prefer: chunk-delay wins).
    stream_chunk_delay_ms: int = 0
    # The /_mock control API: on by default; a token is required when it is set.
    admin_enabled: bool = True
    admin_token: str | None = None
    log_requests: bool = False
    # Where state lives: "memory" (this process only) or "redis://host:port/db" (shared by
    # every worker and instance on that Redis database, and kept across restarts).
    store: str = DEFAULT_STORE
    # Namespace of this mock's keys in Redis: mocks with different prefixes share nothing.
    store_prefix: str = DEFAULT_STORE_PREFIX
    # Origins a browser app may call the mock from (CORS); "*" is any, () switches CORS off.
    cors_origins: tuple[str, ...] = ("*",)
    # Requests per caller and period, e.g. "100/min" (the vendor's documented default);
    # None: no limit, the mock's default, so that test suites never meet a 429 by surprise.
    rate_limit: str | None = None
    # How quota-mock serves (the pytest plugin's in-process server ignores these): worker
    # processes sharing the port, and threads per worker (None: see :attr:`server_threads`).
    workers: int = 1
    threads: int | None = None
    # The request journal (GET /_mock/requests): how many answered requests it keeps (0: off;
    # with Redis, shared by the workers) and how many bytes of each body.
    journal_size: int = DEFAULT_CAPACITY
    journal_body_limit: int = DEFAULT_BODY_LIMIT
    # Set by the quota-mock command for the workers it starts, one value per run: a worker that
    # starts after a sibling's reset adopts that reset's seed (domain/redis_resets.py).
    run_id: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> MockConfig:
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        for name in ("api_keys", "cors_origins"):
            if name in values:
                if isinstance(values[name], str):
                    raise ConfigError(f"{name} must be a list of strings, not one string")
                values[name] = tuple(values[name])
        return cls(**values).checked()

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        return json.dumps(values, default=str)

    @classmethod
    def from_environment(cls) -> MockConfig:
        """The configuration the CLI put in :data:`CONFIG_ENVIRONMENT_VARIABLE` for its workers."""
        raw = os.environ.get(CONFIG_ENVIRONMENT_VARIABLE)
        if raw is None:
            raise ConfigError(f"{CONFIG_ENVIRONMENT_VARIABLE} is not set: start the mock with quota-mock")
        return cls.from_mapping(json.loads(raw))

    def checked(self) -> MockConfig:
        for name in ("port", "max_body_bytes", "max_idempotency_keys", "workers", "journal_size", "journal_body_limit"):
            _require_whole_number(name, getattr(self, name))
        if self.threads is not None:
            _require_whole_number("threads", self.threads)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, not {self.port}")
        if self.max_body_bytes < 1024:
            raise ConfigError("max_body_bytes must be at least 1024")
        if self.idempotency_ttl_seconds <= 0:
            raise ConfigError("idempotency_ttl_seconds must be positive")
        if self.max_idempotency_keys < 1:
            raise ConfigError("max_idempotency_keys must be at least 1")
        if self.grant_delay_seconds < 0:
            raise ConfigError("grant_delay_seconds must not be negative")
        if not 0 <= self.stream_chunk_delay_ms <= MAX_LATENCY_MS:
            raise ConfigError(
                f"stream_chunk_delay_ms must be from 0 to {MAX_LATENCY_MS}, not {self.stream_chunk_delay_ms}"
            )
        if any(not key.strip() for key in self.api_keys):
            raise ConfigError("an API key must not be empty")
        for key in self.api_keys:
            problem = api_key_problem(key)
            if problem is not None:
                raise ConfigError(problem)
        if not 0 <= self.journal_size <= MAX_CAPACITY:
            raise ConfigError(f"journal_size must be 0 (no journal) to {MAX_CAPACITY}, not {self.journal_size}")
        if self.journal_body_limit < 0:
            raise ConfigError("journal_body_limit must not be negative")
        check_store_url(self.store)
        for origin in self.cors_origins:
            check_cors_origin(origin)
        self.parsed_rate_limit  # noqa: B018 - parsed here so that a bad value fails at start-up
        self.pool_microdollars  # noqa: B018 - likewise
        if not self.store_prefix or any(c.isspace() for c in self.store_prefix):
            raise ConfigError("store_prefix must be a non-empty string without spaces")
        self._check_serving()
        return self

    def _check_serving(self) -> None:
        if self.admin_enabled and not self.admin_token and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to expose the /_mock control API on {self.host} without a token: "
                "pass --admin-token TOKEN or --no-admin"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if self.workers > 1 and not self.uses_redis:
            raise ConfigError(
                f"--workers {self.workers} needs a shared store: with the memory store every worker process "
                "would keep its own balances, ledger and idempotency keys. Pass --store redis://HOST:PORT/DB, "
                "or use one worker (--threads sets its concurrency)"
            )

    @property
    def server_threads(self) -> int:
        """Threads per server worker: as set, else more when grants are held in flight, and
        three on Redis, where a request spends part of its time waiting for Redis."""
        if self.threads is not None:
            return self.threads
        if self.grant_delay_seconds or self.stream_chunk_delay_ms:
            return HOLDING_THREADS
        return REDIS_THREADS if self.uses_redis else 1

    # Parsed once, on first use (``checked`` uses it, so a bad value fails at start-up).
    @functools.cached_property
    def parsed_rate_limit(self) -> RateLimit | None:
        if self.rate_limit is None:
            return None
        if not isinstance(self.rate_limit, str):
            raise ConfigError(f"rate_limit must be a string such as '100/min', not {self.rate_limit!r}")
        try:
            return RateLimit.parse(self.rate_limit)
        except RateLimitError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def uses_redis(self) -> bool:
        return self.store != DEFAULT_STORE

    def build_seed(self) -> Seed:
        """The starting state: the default seed, then the seed file or document, then options."""
        try:
            seed = build_seed(default_seed_document())
            check = default_contract().user_id_problem
            if self.seed_file:
                try:
                    document = read_seed_file(Path(self.seed_file))
                except OSError as exc:
                    raise ConfigError(f"cannot read seed file {self.seed_file}: {exc.strerror}") from exc
                seed = build_seed(document, base=seed, user_id_problem=check)
            if self.seed is not None:
                seed = build_seed(self.seed, base=seed, user_id_problem=check)
        except SeedError as exc:
            raise ConfigError(f"invalid seed: {exc}") from exc
        if self.api_keys:
            seed = dataclasses.replace(seed, api_keys=tuple(dict.fromkeys(self.api_keys)))
        if self.pool_microdollars is not None:
            seed = dataclasses.replace(seed, pool=self.pool_microdollars)
        return seed

    @functools.cached_property
    def pool_microdollars(self) -> int | None:
        """:attr:`pool`, parsed once (``checked`` parses it, so a bad value fails at start-up)."""
        if self.pool is None:
            return None
        try:
            pool = dollars_to_micros(self.pool)
        except MoneyError as exc:
            raise ConfigError(f"pool: {exc}") from exc
        if pool < 0:
            raise ConfigError("pool must not be negative")
        return pool


def default_pool() -> str:
    """The default seed's grant pool, as dollars (for help texts)."""
    return format_money(build_seed(default_seed_document()).pool)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_whole_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, not {value!r}")


def check_cors_origin(origin: str) -> None:
    """``*`` or an origin as browsers send it: ``scheme://host[:port]``, nothing after."""
    if origin == "*":
        return
    if not isinstance(origin, str):
        raise ConfigError(f"CORS origin must be a string, not {type(origin).__name__}")
    hint = "write it as a browser sends it, e.g. http://localhost:3000 (no path, no trailing slash), or '*'"
    try:
        url = urlsplit(origin)
        url.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"CORS origin {origin!r}: {hint}") from None
    if url.scheme not in ("http", "https") or not url.hostname or url.path or url.query or url.fragment:
        raise ConfigError(f"CORS origin {origin!r}: {hint}")


def check_store_url(store: str) -> None:
    """``memory``, or a Redis URL redis-py can open: ``redis://[user:password@]host:port/db``."""
    if store == DEFAULT_STORE:
        return
    if not isinstance(store, str):
        raise ConfigError(f"store must be a string, not {type(store).__name__}")
    hint = "use 'memory' or a Redis URL such as redis://127.0.0.1:6379/0"
    try:
        url = urlsplit(store)
        port = url.port
    except ValueError as exc:
        raise ConfigError(f"store: cannot parse {store!r} ({exc}); {hint}") from None
    if url.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"store: unknown kind {store!r}; {hint}")
    if url.scheme == "unix":
        if not url.path:
            raise ConfigError("store: a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock?db=0")
        return
    if not url.hostname:
        raise ConfigError(f"store: {store!r} names no host; {hint}")
    if port == 0:
        raise ConfigError(f"store: {store!r}: port must be 1-65535")
    database = url.path.lstrip("/")
    if database and not database.isdigit():
        raise ConfigError(f"store: {store!r}: the database must be a number (/0 to /15), not {database!r}")
