"""``quota-conformance proxy``: a validation proxy between an app and a deployment.

    quota-conformance proxy --upstream URL [--host 127.0.0.1] [--port 8081]
                            [--json PATH] [--junit-xml PATH] [--profile documented|strict]

Point the app at the proxy instead of the deployment and use it: every exchange is relayed
unchanged and judged by the suite's rules; each violation is printed as one line when it is
found, ``GET /_proxy/report`` answers the running report. On Ctrl-C (SIGINT) or SIGTERM the
reports are written and the exit code says whether a violation at the profile's level was
seen: 1 if one was, 0 if none, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from ..options import Profile
from ..report import as_junit
from ..runner import EXIT_CONFORMANT, EXIT_USAGE, EXIT_VIOLATIONS
from .forwarding import REPORT_PATH, ProxyServer
from .judge import CALLER_KEY, Judge

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quota-conformance proxy",
        description="Relay an app's requests to a deployment unchanged, and judge every exchange against "
        "openapi.yaml with the suite's rules.",
        epilog="Exit codes on SIGINT/SIGTERM: 0 no violation at the profile's level, 1 violations, 2 usage error.",
    )
    parser.add_argument("--upstream", required=True, metavar="URL", help="the deployment, e.g. https://staging.example")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT}; 0 picks one)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the JSON report here on exit")
    parser.add_argument("--junit-xml", type=Path, metavar="PATH", help="write a JUnit XML report here on exit")
    parser.add_argument(
        "--profile",
        choices=[p.value for p in Profile],
        default=Profile.DOCUMENTED.value,
        help="documented: fail only on what the vendor documents (default); strict: on every violation of openapi.yaml",
    )
    return parser


class Proxy:
    """A running proxy: its server on a thread, its judge, and how it stops."""

    def __init__(
        self, upstream: str, host: str, port: int, profile: Profile, say: Callable[[str], None] | None = None
    ) -> None:
        self.judge = Judge(upstream, profile, say=say or _say)
        self.server = ProxyServer((host, port), upstream, self.judge.begin, self.judge.observe, self.judge.report)
        # shutdown() waits for the serving loop's next look at its flag: 0.05 s, not the default 0.5.
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="quota-proxy", daemon=True)

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    url = urlsplit(args.upstream)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        print(
            f"quota-conformance proxy: --upstream must be an http(s) URL such as https://staging.example, "
            f"not {args.upstream!r}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        proxy = Proxy(args.upstream, args.host, args.port, Profile(args.profile))
    except OSError as exc:
        print(f"quota-conformance proxy: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    proxy.start()
    base = proxy.server.base_url
    _say(f"quota-conformance proxy at {base} -> {args.upstream} (profile {args.profile})")
    _say(f"  point your app at {base}; running report: {base}{REPORT_PATH}; Ctrl-C writes the reports and stops")
    stop.wait()
    proxy.stop()
    return finish(proxy.judge, args.json, args.junit_xml)


def finish(judge: Judge, json_path: Path | None, junit_path: Path | None) -> int:
    """Write the reports, print the verdict, and return the exit code."""
    summary = judge.summary()
    try:
        if json_path is not None:  # the suite's JSON report, plus what the traffic covered
            json_path.write_text(json.dumps(judge.report(), indent=2), encoding="utf-8")
        if junit_path is not None:
            junit_path.write_text(as_junit(summary, CALLER_KEY), encoding="utf-8")
    except OSError as exc:
        print(f"quota-conformance proxy: cannot write a report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    counts = summary.counts
    coverage = judge.coverage.view()
    _say(
        f"{counts['failed']} failed, {counts['warned']} warned, {counts['passed']} passed, "
        f"{counts['skipped']} not exercised; {coverage['exchanges']} exchanges, "
        f"{coverage['statuses_exercised']} of {coverage['statuses_documented']} documented statuses exercised"
    )
    _say("RESULT: " + ("no violation at the profile's level" if summary.conformant else "violations found"))
    return EXIT_CONFORMANT if summary.conformant else EXIT_VIOLATIONS


def _say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
