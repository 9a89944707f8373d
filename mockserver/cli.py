"""``quota-mock``: serve the mock of the Quota Funding API from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import re
import sys
from collections.abc import Sequence

from flask import Flask

from .config import CONFIG_ENVIRONMENT_VARIABLE, DEFAULT_HOST, DEFAULT_PORT, ConfigError, MockConfig
from .domain.errors import SERVICE_UNAVAILABLE, QuotaError
from .server import free_port, serve
from .web.app import create_app
from .web.request_log import redact_key
from .web.state import mock_state

EXIT_USAGE = 2
# Threads when grants are held in flight (--grant-delay): one held request must not stall the
# rest. Otherwise one thread is fastest: Python threads contend for the GIL (benchmarks/).
HOLDING_THREADS = 8


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quota-mock",
        description="A stateful, contract-driven mock of the Quota Funding API.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}, loopback only)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT}; 0 picks one)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept this API key (repeatable); default: the docs' demo key sk-quota-your-api-key",
    )
    parser.add_argument("--seed", metavar="FILE", help="JSON or YAML seed file: developer, keys, pool, users, prices")
    parser.add_argument("--pool", metavar="DOLLARS", help="grant pool to start with, in dollars (default 1000.00)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="Python threads per worker (default 1, the fastest: threads contend for the GIL; "
        f"{HOLDING_THREADS} with --grant-delay, so that a held request does not stall the others)",
    )
    parser.add_argument(
        "--store",
        default="memory",
        metavar="URL",
        help="where state lives: memory (default) or redis://HOST:PORT/DB, shared by workers and kept across restarts",
    )
    parser.add_argument(
        "--store-prefix",
        default=None,
        metavar="PREFIX",
        help="namespace of this mock's Redis keys (default quota-mock:)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port (default 1; more than 1 needs --store redis://...)",
    )
    parser.add_argument(
        "--grant-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help="hold every grant in flight this long (for testing client retries)",
    )
    parser.add_argument(
        "--idempotency-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long an Idempotency-Key is remembered (default 86400)",
    )
    parser.add_argument(
        "--max-idempotency-keys",
        type=int,
        default=None,
        metavar="N",
        help="bound on stored Idempotency-Keys (default 100000)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="let a browser app on ORIGIN call the mock (repeatable; default '*': any origin)",
    )
    parser.add_argument(
        "--no-cors", action="store_true", help="send no CORS headers: browsers on other origins are refused"
    )
    parser.add_argument(
        "--rate-limit",
        metavar="N/PERIOD",
        help="answer 429 rate_limit_exceeded past N requests per API key and period, e.g. 100/min (default: no limit)",
    )
    parser.add_argument(
        "--journal-size",
        type=int,
        default=None,
        metavar="N",
        help="answered requests kept for GET /_mock/requests (default 5000; 0 switches the journal off)",
    )
    parser.add_argument(
        "--journal-body-limit",
        type=int,
        default=None,
        metavar="BYTES",
        help="bytes kept of each request and response body in the journal (default 4096)",
    )
    parser.add_argument("--admin-token", help="require this token (X-Mock-Admin-Token) on the /_mock control API")
    parser.add_argument("--no-admin", action="store_true", help="switch the /_mock control API off")
    parser.add_argument(
        "--validate-responses",
        action="store_true",
        help="check every response against openapi.yaml (slow; for debugging the mock)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log one line per request")
    return parser


# Options that leave the configuration's own default in place unless given.
_OPTIONAL_SETTINGS = {
    "store_prefix": "store_prefix",
    "rate_limit": "rate_limit",
    "grant_delay": "grant_delay_seconds",
    "idempotency_ttl": "idempotency_ttl_seconds",
    "max_idempotency_keys": "max_idempotency_keys",
    "journal_size": "journal_size",
    "journal_body_limit": "journal_body_limit",
}


def config_from_args(args: argparse.Namespace) -> MockConfig:
    values: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "seed_file": args.seed,
        "pool": args.pool,
        "admin_enabled": not args.no_admin,
        "admin_token": args.admin_token,
        "validate_responses": args.validate_responses,
        "log_requests": not args.quiet,
        "store": args.store,
    }
    for option, setting in _OPTIONAL_SETTINGS.items():
        if getattr(args, option) is not None:
            values[setting] = getattr(args, option)
    if args.no_cors and args.cors_origins:
        raise ConfigError("--no-cors and --cors-origin contradict each other: pass one of them")
    if args.no_cors:
        values["cors_origins"] = ()
    elif args.cors_origins:
        values["cors_origins"] = tuple(args.cors_origins)
    if args.api_keys:
        values["api_keys"] = tuple(args.api_keys)
    config = MockConfig.from_mapping(values)
    if config.admin_enabled and not config.admin_token and not _is_loopback(config.host):
        raise ConfigError(
            f"refusing to expose the /_mock control API on {config.host} without a token: "
            "pass --admin-token TOKEN or --no-admin"
        )
    if args.threads is None:
        args.threads = HOLDING_THREADS if args.grant_delay else 1
    if args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.workers > 1 and not config.uses_redis:
        raise ConfigError(
            f"--workers {args.workers} needs a shared store: with the memory store every worker process "
            "would keep its own balances, ledger and idempotency keys. Pass --store redis://HOST:PORT/DB, "
            "or use one worker (--threads sets its concurrency)"
        )
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        # Built here once to check everything (seed, keys, the store) before serving, and so
        # that the forked workers start with every module already imported.
        app = create_app(config)
        port = config.port or free_port(config.host)
    except ConfigError as exc:
        print(f"quota-mock: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QuotaError as exc:  # from the store while loading the seed: Redis away, or a seed it cannot hold
        if exc.code == SERVICE_UNAVAILABLE:
            reason = exc.__cause__ or exc.message
            print(f"quota-mock: cannot reach the store {_redact_url(config.store)}: {reason}", file=sys.stderr)
        else:
            print(f"quota-mock: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"quota-mock: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE

    base_url = _base_url(config.host, port)
    keys = mock_state(app).service.seed.api_keys
    demo = keys == ("sk-quota-your-api-key",)
    print(f"quota-mock serving the Quota Funding API at {base_url}")
    print(f"  API key:     {keys[0] if demo else redact_key(keys[0])}" + ("  (the docs' demo key)" if demo else ""))
    if config.uses_redis:
        print(f"  store:       {_store_line(config, mock_state(app).service.store)}")
    print(f"  workers:     {args.workers} x {args.threads} threads")
    if config.admin_enabled:
        print(f"  dashboard:   {base_url}/_mock/")
        print(f"  control API: {base_url}/_mock/state")
    if config.cors_origins:
        print(f"  CORS:        {', '.join(config.cors_origins)}")
    if config.parsed_rate_limit is not None:
        print(f"  rate limit:  {config.parsed_rate_limit.describe()} per API key")
    print(f"  try:         curl {base_url}/v1/packages")
    print("Press Ctrl-C to stop.", flush=True)
    # The workers build their own apps (their own connections) from this configuration.
    _close_store(app)
    os.environ[CONFIG_ENVIRONMENT_VARIABLE] = dataclasses.replace(config, port=port).to_json()
    if config.log_requests:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    try:
        serve("mockserver.wsgi:app_from_environment", config.host, port, threads=args.threads, workers=args.workers)
    except OSError as exc:
        print(f"quota-mock: cannot listen on {config.host}:{port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print("quota-mock stopped.", flush=True)
    return 0


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _redact_url(url: str) -> str:
    """A store URL with its password, if any, replaced: banners and errors may be logged."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _store_line(config: MockConfig, store: object) -> str:
    kept = getattr(store, "loaded_seed", True) is False
    state = "state kept from an earlier run (POST /_mock/reset reloads the seed)" if kept else "seeded"
    return f"{_redact_url(config.store)} (prefix {config.store_prefix}), {state}"


def _close_store(app: Flask) -> None:
    close = getattr(mock_state(app).service.store, "close", None)
    if close is not None:
        close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
