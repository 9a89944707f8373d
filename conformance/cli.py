"""``quota-conformance``: run the suite against a deployment, or against an embedded mock.

Exit codes: 0 conformant, 1 violations found, 2 usage error or target unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .options import (
    DEFAULT_BUDGET,
    DEFAULT_FUZZ_SECONDS,
    DEFAULT_PREFIX,
    FUZZ_SOURCES,
    Options,
    OptionsError,
    Profile,
    parse_budget,
)
from .registry import REGISTRY
from .report import as_json, as_junit, human, redact, rules_markdown
from .runner import EXIT_USAGE, TargetUnreachable, run

KEY_ENV = "QUOTA_API_KEY"
SECOND_KEY_ENV = "QUOTA_SECOND_API_KEY"
DEMO_KEY = "sk-quota-your-api-key"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse echoes bad values; never let it echo a key.
        self.print_usage(sys.stderr)
        keys = [os.environ.get(KEY_ENV, ""), os.environ.get(SECOND_KEY_ENV, "")]
        for i, arg in enumerate(sys.argv):
            if arg in ("--api-key", "--second-api-key") and i + 1 < len(sys.argv):
                keys.append(sys.argv[i + 1])
        sys.stderr.write(redact(f"{self.prog}: error: {message}\n", keys))
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="quota-conformance",
        description="Check a Quota Funding API deployment against openapi.yaml. Without --base-url, "
        "an embedded mock is started and tested (a demo).",
        epilog="Exit codes: 0 conformant, 1 violations found, 2 usage error or target unreachable.",
    )
    p.add_argument("--base-url", help="the deployment to test, e.g. https://api.usequota.ai")
    p.add_argument("--api-key", help=f"the API key (default: ${KEY_ENV}); never printed")
    p.add_argument("--profile", choices=[x.value for x in Profile], default=Profile.DOCUMENTED.value,
                   help="documented: fail only on what the vendor documents (default); strict: on every "
                   "violation of openapi.yaml")
    p.add_argument("--read-only", action="store_true",
                   help="send only safe requests (GET, HEAD, OPTIONS): no grants, no chats")
    p.add_argument("--budget", default=DEFAULT_BUDGET, metavar="DOLLARS",
                   help=f"the most the run may grant in total (default ${DEFAULT_BUDGET})")
    p.add_argument("--user-prefix", default=DEFAULT_PREFIX, metavar="PREFIX",
                   help=f"users the run creates are PREFIX + random suffix (default {DEFAULT_PREFIX})")
    p.add_argument("--junit-xml", type=Path, metavar="PATH", help="write a JUnit XML report")
    p.add_argument("--json", type=Path, metavar="PATH", help="write a JSON report")
    p.add_argument("--fuzz-time", type=float, default=DEFAULT_FUZZ_SECONDS, metavar="SECONDS",
                   help="time budget of the schema-driven phase, shared by the operations in turn "
                   f"(default {DEFAULT_FUZZ_SECONDS:g})")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="generated cases per operation and mode (default: as many as --fuzz-time allows)")
    p.add_argument("--fuzz-sources", default=",".join(FUZZ_SOURCES), metavar="LIST",
                   help="where the schema-driven phase's requests come from, in order: "
                   f"{', '.join(FUZZ_SOURCES)} (default: all)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="Hypothesis seed (default 0)")
    p.add_argument("--max-requests", type=int, default=None, metavar="N",
                   help="request bound for the whole run (default: none; the time bounds apply)")
    p.add_argument("--time-limit", type=float, default=300.0, metavar="SECONDS", help="time bound (default 300)")
    p.add_argument("--no-chat", action="store_true", help="send no chat completions (skips the 402 check)")
    p.add_argument("--chat-model", default="gpt-4o",
                   help="the model the rules' chats name (default gpt-4o; if the deployment refuses it as an "
                        "unknown model, the run names the one openapi.yaml's examples show instead)")
    p.add_argument("--max-drain-chats", type=int, default=5, metavar="N",
                   help="chats spent draining a one-cent user to reach 402 (default 5)")
    p.add_argument("--no-fuzz", action="store_true", help="skip the Schemathesis-generated phase")
    p.add_argument("--second-api-key", metavar="KEY",
                   help=f"a second key of the same account (default: ${SECOND_KEY_ENV}): checks that "
                   "Idempotency-Keys are scoped per API key; never printed")
    p.add_argument("--unusual-methods", action="store_true",
                   help="also send PUT, PATCH and DELETE to routes that do not define them (expecting 405)")
    p.add_argument("--retention-check", type=float, default=0.0, metavar="SECONDS",
                   help="make a grant first, wait until SECONDS have passed, and replay its key")
    p.add_argument("--state-file", type=Path, metavar="PATH",
                   help="replay the grant the previous run saved in PATH, and save this run's for the next")
    p.add_argument("--rule", action="append", default=[], metavar="ID",
                   help="run only this rule (an id such as idem.replay, or a family such as idem); repeatable")
    p.add_argument("--quiet", action="store_true", help="print the one-line-per-rule summary without details")
    p.add_argument("--list-rules", action="store_true", help="print every rule (id, provenance, needs) and exit")
    return p


def options_from(args: argparse.Namespace) -> Options:
    key = args.api_key or os.environ.get(KEY_ENV) or (DEMO_KEY if args.base_url is None else "")
    return Options(
        api_key=key,
        base_url=args.base_url,
        profile=Profile(args.profile),
        read_only=args.read_only,
        budget_micros=parse_budget(args.budget),
        user_prefix=args.user_prefix,
        fuzz_seconds=args.fuzz_time,
        max_examples=args.max_examples,
        fuzz_sources=tuple(part.strip() for part in args.fuzz_sources.split(",") if part.strip()),
        seed=args.seed,
        max_requests=args.max_requests,
        time_limit_seconds=args.time_limit,
        chat=not args.no_chat,
        chat_model=args.chat_model,
        max_drain_chats=args.max_drain_chats,
        fuzz=not args.no_fuzz,
        second_api_key=args.second_api_key or os.environ.get(SECOND_KEY_ENV) or None,
        unusual_methods=args.unusual_methods,
        retention_check_seconds=args.retention_check,
        state_file=str(args.state_file) if args.state_file else None,
        rules=tuple(args.rule),
    ).checked()


@contextlib.contextmanager
def embedded_mock(*api_keys: str) -> Iterator[str]:
    """A quota-mock on a free local port, accepting ``api_keys``."""
    from mockserver import create_app
    from mockserver.server import MockServer

    with MockServer(create_app({"api_keys": list(api_keys)}), port=0) as server:
        yield server.base_url


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["proxy"]:  # the validation proxy, a command of its own
        from .proxy.cli import main as proxy_main

        return proxy_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.list_rules:
        print(rules_markdown(list(REGISTRY)))
        return 0
    key_hint = [args.api_key or os.environ.get(KEY_ENV, ""), args.second_api_key or ""]
    try:
        options = options_from(args)
    except OptionsError as exc:
        sys.stderr.write(redact(f"quota-conformance: error: {exc}\n", key_hint))
        return EXIT_USAGE
    try:
        if options.base_url is None:
            with embedded_mock(*options.secrets) as url:
                print(f"No --base-url: testing an embedded quota-mock at {url} (a demo).", flush=True)
                report = run(Options(**{**options.__dict__, "base_url": url}))
        else:
            report = run(options)
    except TargetUnreachable as exc:
        sys.stderr.write(redact(f"quota-conformance: {exc}\n", options.secrets))
        return EXIT_USAGE
    print(human(report.summary, options.secrets, verbose=not args.quiet))
    try:
        if args.junit_xml:
            args.junit_xml.write_text(as_junit(report.summary, options.secrets), encoding="utf-8")
        if args.json:
            args.json.write_text(as_json(report.summary, options.secrets), encoding="utf-8")
    except OSError as exc:
        sys.stderr.write(f"quota-conformance: cannot write a report: {exc}\n")
        return EXIT_USAGE
    return report.exit_code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
