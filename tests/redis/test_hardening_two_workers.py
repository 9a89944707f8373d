"""The hardening issue's reproductions (issue 11) against ``quota-mock --store redis --workers 2``
over a real socket: each is answered as on one worker, and a refusal changes nothing in the
shared state (``tests/hostile_http.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .. import hostile_http
from ..e2e.conftest import LiveMock, start_quota_mock
from ..private_redis import shared_redis


@pytest.fixture(scope="module")
def two_workers() -> Iterator[LiveMock]:
    server = shared_redis()  # skips (fails in CI) when redis-server is not installed
    live = start_quota_mock("--quiet", "--store", server.url, "--store-prefix", "hardening:", "--workers", "2")
    yield live
    live.stop()


@pytest.mark.parametrize("reproduce", hostile_http.REPRODUCTIONS.values(), ids=hostile_http.REPRODUCTIONS.keys())
def test_on_redis_with_two_workers(two_workers: LiveMock, reproduce: Callable[[str], None]) -> None:
    reproduce(two_workers.base_url)


def test_non_ascii_header_values_on_redis_with_two_workers(two_workers: LiveMock) -> None:
    hostile_http.non_ascii_header_values(two_workers.base_url, passes_bytes=False)
