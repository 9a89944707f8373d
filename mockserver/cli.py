"""``quota-mock``: serve the mock of the Quota Funding API from the command line."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from .config import DEFAULT_HOST, DEFAULT_PORT, ConfigError, MockConfig
from .server import DEFAULT_THREADS, MockServer
from .web.app import create_app, mock_state
from .web.request_log import redact_key

EXIT_USAGE = 2


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
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="worker threads (default 8)")
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
    parser.add_argument("--admin-token", help="require this token (X-Mock-Admin-Token) on the /_mock control API")
    parser.add_argument("--no-admin", action="store_true", help="switch the /_mock control API off")
    parser.add_argument(
        "--validate-responses",
        action="store_true",
        help="check every response against openapi.yaml (slow; for debugging the mock)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log one line per request")
    return parser


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
    }
    if args.api_keys:
        values["api_keys"] = tuple(args.api_keys)
    if args.idempotency_ttl is not None:
        values["idempotency_ttl_seconds"] = args.idempotency_ttl
    if args.max_idempotency_keys is not None:
        values["max_idempotency_keys"] = args.max_idempotency_keys
    config = MockConfig.from_mapping(values)
    if config.admin_enabled and not config.admin_token and not _is_loopback(config.host):
        raise ConfigError(
            f"refusing to expose the /_mock control API on {config.host} without a token: "
            "pass --admin-token TOKEN or --no-admin"
        )
    if args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        app = create_app(config)
        server = MockServer(app, config.host, config.port, threads=args.threads)
    except ConfigError as exc:
        print(f"quota-mock: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"quota-mock: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger("waitress").setLevel(logging.WARNING)
    keys = mock_state(app).service.seed.api_keys
    demo = keys == ("sk-quota-your-api-key",)
    print(f"quota-mock serving the Quota Funding API at {server.base_url}")
    print(f"  API key:     {keys[0] if demo else redact_key(keys[0])}" + ("  (the docs' demo key)" if demo else ""))
    if config.admin_enabled:
        print(f"  control API: {server.base_url}/_mock/state")
    print(f"  try:         curl {server.base_url}/v1/packages")
    print("Press Ctrl-C to stop.", flush=True)

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("quota-mock stopped.", flush=True)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
