"""``quota-mock``: serve the mock of the Quota Funding API from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import secrets
import sys
from collections.abc import Sequence

from flask import Flask

from .config import (
    CONFIG_ENVIRONMENT_VARIABLE,
    HOLDING_THREADS,
    REDIS_THREADS,
    ConfigError,
    MockConfig,
    default_pool,
)
from .domain.errors import SERVICE_UNAVAILABLE, QuotaError
from .server import free_port, serve
from .web.app import create_app
from .web.request_log import redact_key
from .web.state import mock_state

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    # Every option defaults to None, "not given": the configuration's own default applies,
    # and the help texts quote it from there.
    defaults = MockConfig()
    parser = argparse.ArgumentParser(
        prog="quota-mock",
        description="A stateful, contract-driven mock of the Quota Funding API.",
    )
    parser.add_argument("--host", help=f"address to bind (default {defaults.host}, loopback only)")
    parser.add_argument("--port", type=int, help=f"port to listen on (default {defaults.port}; 0 picks one)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept this API key (repeatable); default: the docs' demo key sk-quota-your-api-key",
    )
    parser.add_argument("--seed", metavar="FILE", help="JSON or YAML seed file: developer, keys, pool, users, prices")
    parser.add_argument(
        "--pool", metavar="DOLLARS", help=f"grant pool to start with, in dollars (default {default_pool()})"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help=f"Python threads per worker (default {defaults.server_threads}, the fastest: threads contend for "
        f"the GIL; {REDIS_THREADS} with --store redis://, whose requests wait for Redis; {HOLDING_THREADS} "
        "with --grant-delay, so that a held request does not stall the others)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help=f"where state lives: {defaults.store} (default) or redis://HOST:PORT/DB, "
        "shared by workers and kept across restarts",
    )
    parser.add_argument(
        "--store-prefix",
        metavar="PREFIX",
        help=f"namespace of this mock's Redis keys (default {defaults.store_prefix})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"worker processes sharing the port (default {defaults.workers}; more than 1 needs --store redis://...)",
    )
    parser.add_argument(
        "--grant-delay",
        type=float,
        metavar="SECONDS",
        help="hold every grant in flight this long (for testing client retries)",
    )
    parser.add_argument(
        "--stream-chunk-delay",
        type=int,
        metavar="MS",
        help="milliseconds between the events of a streamed chat, as a model's tokens arrive (for testing a UI "
        "that renders or stops a stream; a request's Prefer: chunk-delay=MS wins)",
    )
    parser.add_argument(
        "--idempotency-ttl",
        type=float,
        metavar="SECONDS",
        help=f"how long an Idempotency-Key is remembered (default {defaults.idempotency_ttl_seconds:g})",
    )
    parser.add_argument(
        "--max-idempotency-keys",
        type=int,
        metavar="N",
        help="bound on unexpired Idempotency-Keys; new ones get 503 when full"
        f" (default {defaults.max_idempotency_keys})",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="let a browser app on ORIGIN call the mock (repeatable; default "
        f"{', '.join(repr(o) for o in defaults.cors_origins)}: any origin)",
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
        metavar="N",
        help=f"answered requests kept for GET /_mock/requests (default {defaults.journal_size}; 0: no journal)",
    )
    parser.add_argument(
        "--journal-body-limit",
        type=int,
        metavar="BYTES",
        help=f"bytes kept of each request and response body in the journal (default {defaults.journal_body_limit})",
    )
    parser.add_argument("--admin-token", help="require this token (X-Mock-Admin-Token) on the /_mock control API")
    parser.add_argument("--no-admin", action="store_true", help="switch the /_mock control API off")
    parser.add_argument(
        "--enforce-billing-mode",
        action="store_true",
        help="refuse a chat on the endpoint the account's billing_mode does not bill, as the vendor does "
        '(400 "wrong billing endpoint"); by default both endpoints serve whatever the mode',
    )
    parser.add_argument(
        "--validate-responses",
        action="store_true",
        help="check every response against openapi.yaml (slow; for debugging the mock)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log one line per request")
    return parser


# Options that become the setting of the same meaning when given (not None).
_SETTINGS = {
    "host": "host",
    "port": "port",
    "seed": "seed_file",
    "pool": "pool",
    "admin_token": "admin_token",
    "store": "store",
    "store_prefix": "store_prefix",
    "rate_limit": "rate_limit",
    "grant_delay": "grant_delay_seconds",
    "stream_chunk_delay": "stream_chunk_delay_ms",
    "idempotency_ttl": "idempotency_ttl_seconds",
    "max_idempotency_keys": "max_idempotency_keys",
    "workers": "workers",
    "threads": "threads",
    "journal_size": "journal_size",
    "journal_body_limit": "journal_body_limit",
}


def config_from_args(args: argparse.Namespace) -> MockConfig:
    """The command line as settings; :class:`MockConfig` checks them, the command's rules included."""
    values: dict[str, object] = {
        setting: getattr(args, option) for option, setting in _SETTINGS.items() if getattr(args, option) is not None
    }
    values["admin_enabled"] = not args.no_admin
    values["validate_responses"] = args.validate_responses
    values["enforce_billing_mode"] = args.enforce_billing_mode
    values["log_requests"] = not args.quiet  # the command logs each request unless told not to
    # Two flags for one setting: which was meant is the command line's question, not a setting's.
    if args.no_cors and args.cors_origins:
        raise ConfigError("--no-cors and --cors-origin contradict each other: pass one of them")
    if args.no_cors:
        values["cors_origins"] = ()
    elif args.cors_origins:
        values["cors_origins"] = tuple(args.cors_origins)
    if args.api_keys:
        values["api_keys"] = tuple(args.api_keys)
    return MockConfig.from_mapping(values)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = None
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
    except OSError as exc:  # from free_port, once the configuration is built
        where = f"{config.host}:{config.port}" if config is not None else "the address given"
        print(f"quota-mock: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE

    base_url = _base_url(config.host, port)
    keys = mock_state(app).service.seed.api_keys
    demo = keys == ("sk-quota-your-api-key",)
    print(f"quota-mock serving the Quota Funding API at {base_url}")
    print(f"  API key:     {keys[0] if demo else redact_key(keys[0])}" + ("  (the docs' demo key)" if demo else ""))
    if config.uses_redis:
        print(f"  store:       {_store_line(config, mock_state(app).service.store)}")
    print(f"  workers:     {config.workers} x {config.server_threads} threads")
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
    run = dataclasses.replace(config, port=port, run_id=secrets.token_hex(8))
    os.environ[CONFIG_ENVIRONMENT_VARIABLE] = run.to_json()
    if config.log_requests:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    try:
        serve(
            "mockserver.wsgi:app_from_environment",
            config.host,
            port,
            threads=config.server_threads,
            workers=config.workers,
        )
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
