"""A real browser: headless Chromium from Debian's packages, driven by Playwright.

Only the system's Chromium is used (``apt-get install chromium``, done by ``.ci/run``);
Playwright's own browser downloads are never used. Without Chromium these tests are skipped
with the reason, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mockserver import create_app
from mockserver.server import MockServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _require_chromium() -> None:
    if CHROMIUM.exists() and shutil.which("chromium"):
        return
    reason = "Chromium is not installed (apt-get install chromium; .ci/run does it)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed: pip install -e '.[test]'")
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=20_000)
        yield chromium
        chromium.close()


class RecordingApp:
    """The mock's WSGI app, remembering each request's method and path (to see preflights)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def mock() -> Iterator[tuple[MockServer, RecordingApp]]:
    app = create_app({"validate_responses": True})
    recorder = RecordingApp(app.wsgi_app)
    app.wsgi_app = recorder  # type: ignore[method-assign]
    with MockServer(app) as server:
        yield server, recorder
    assert app.extensions["quota_mock_response_violations"] == []


@pytest.fixture(scope="module")
def other_origin(mock: tuple[MockServer, RecordingApp]) -> Iterator[str]:
    """A second tiny server, on another port (so another origin), serving the app page."""
    page = (Path(__file__).parent / "frontend.html").read_text(encoding="utf-8")
    page = page.replace("__MOCK_URL__", mock[0].base_url).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API's spelling
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
