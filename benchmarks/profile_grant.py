"""Where a grant request's time goes inside the app (cProfile, the WSGI app called directly).

No server and no test client: a ready WSGI environ goes straight into the Flask app, so the
profile shows the app's own cost per request. Printed into RESULTS.md so that any missed
target is explained by measurement, not guesses.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from typing import Any

from werkzeug.test import EnvironBuilder

from mockserver import create_app

REQUESTS = 5000
BODY = b'{"external_user_id": "bench_user", "amount": 0.01, "description": "benchmark"}'


def _environ(key: str) -> dict[str, Any]:
    builder = EnvironBuilder(
        path="/v1/funding/grant",
        method="POST",
        data=BODY,
        headers={
            "Authorization": "Bearer sk-quota-your-api-key",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
    )
    return builder.get_environ()


def _call(app: Any, environ: dict[str, Any]) -> None:
    for _chunk in app(environ, lambda status, headers, exc_info=None: None):
        pass


def app_seconds_per_grant(app: Any = None, requests: int = 2000, repeats: int = 5) -> float:
    """Seconds one grant costs inside a WSGI app (the mock by default): the best of a few
    runs, since the machine is shared and noise only ever adds time."""
    app = app or create_app({"pool": "100000000"})
    best = float("inf")
    for repeat in range(repeats):
        environs = [_environ(f"t-{repeat}-{i}") for i in range(requests)]
        started = time.perf_counter()
        for environ in environs:
            _call(app, environ)
        best = min(best, (time.perf_counter() - started) / requests)
    return best


def profile_grants(requests: int = REQUESTS, top: int = 20) -> str:
    app = create_app({"pool": "100000000"})
    for i in range(200):  # warm-up
        _call(app, _environ(f"warm-{i}"))
    environs = [_environ(f"k-{i}") for i in range(requests)]
    profiler = cProfile.Profile()
    profiler.enable()
    for environ in environs:
        _call(app, environ)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


if __name__ == "__main__":
    print(f"{app_seconds_per_grant() * 1e6:.0f} µs per grant in the app alone")
    print(profile_grants())
