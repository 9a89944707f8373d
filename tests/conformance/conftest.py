"""Fixtures for the conformance suite's own tests: the mock (and its mutants) in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from conformance import Options, RunReport, run
from mockserver import mock_state
from mockserver.server import MockServer

from .mutants import KEY, Exchange, base_app, middleware

# Small enough to keep each run well under a second, large enough to exercise every operation.
FAST = {"max_examples": 3, "seed": 1}


@pytest.fixture
def run_app() -> Callable[..., RunReport]:
    """Run the suite in-process against ``app`` (a fresh mock by default)."""

    def go(app: Flask | None = None, sleep: Callable[[float], None] | None = None, **options: Any) -> RunReport:
        extra = {"sleep": sleep} if sleep is not None else {}
        return run(Options(api_key=KEY, **{**FAST, **options}), app=app or base_app(), **extra)

    return go


@pytest.fixture
def served() -> Iterator[Callable[[Flask], str]]:
    """Serve apps on real sockets (waitress); yields a function returning the base URL."""
    servers: list[MockServer] = []

    def serve(app: Flask) -> str:
        server = MockServer(app, port=0).start()
        servers.append(server)
        return server.base_url

    yield serve
    for server in servers:
        server.stop()


def recording(app: Flask, log: list[tuple[str, str]]) -> Flask:
    """Record every request's method and path as the app receives it."""

    def before(ex: Exchange) -> bool:
        log.append((ex.method, ex.path))
        return False

    return middleware(app, None, before)


def grants_in_ledger(app: Flask) -> list[Any]:
    """The grant entries the run left in the mock's ledger (the seed's deposits excluded)."""
    return [e for e in mock_state(app).service.store.ledger() if e.kind == "grant"]

