"""pytest plugin for SDK authors: a live quota-mock in your test session.

Installed with the kit (entry point ``pytest11``). The server starts once per session on a
free port, in-process, and every test that uses ``quota_mock`` gets it reset to its seed::

    def test_grant(quota_mock):
        client = MySdk(base_url=quota_mock.base_url, api_key=quota_mock.api_key)
        client.grant("user_123", "0.50")
        assert quota_mock.balance("user_123") == "$5.50"

``add_fault`` scripts failures, latency and dropped connections (see ``POST /_mock/faults``);
``requests`` and ``assert_called`` tell what the client sent (the request journal, which the
reset empties, so each test sees its own requests only).
Override the ``quota_mock_config`` fixture (a mapping of :class:`MockConfig` settings,
``seed`` included) to change the starting state for a whole session. ``--quota-mock-store
redis://HOST:PORT/DB`` (or ``"store"`` in that mapping) keeps the state in Redis instead of
in memory; each test still starts from the seed, since ``quota_mock`` resets it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

from .config import DEFAULT_HOST
from .domain.journal import JournalQuery
from .domain.money import format_money
from .domain.records import Conservation, LedgerEntry
from .server import MockServer
from .verification import JournalRequest, Where, verify
from .web import control
from .web.app import create_app
from .web.control_presenters import fault_view
from .web.journal_api import journal_of, query_journal, record_view
from .web.state import MockState, mock_state

__all__ = ["JournalRequest", "QuotaMock", "quota_mock", "quota_mock_config", "quota_mock_server"]


class QuotaMock:
    """A handle on the running mock: where it is, how to call it, and its state."""

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.state: MockState = mock_state(server.app)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def api_key(self) -> str:
        return self.state.service.seed.api_keys[0]

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header for :attr:`api_key`."""
        return {"Authorization": f"Bearer {self.api_key}"}

    # Each helper below takes the control API's own path (``control.py``): the same
    # checks, limits and errors as the /_mock route it mirrors.

    def reset(self) -> None:
        control.reset(self.state)

    def seed(self, document: Mapping[str, Any]) -> None:
        """Replace parts of the starting state (same format as ``quota-mock --seed``)."""
        control.load_seed(self.state, document)

    def set_balance(self, user_id: str, dollars: str | int | Decimal) -> None:
        control.set_balance(self.state, user_id, {"balance": dollars})

    def set_pool(self, dollars: str | int | Decimal) -> None:
        control.set_balance(self.state, None, {"balance": dollars})

    def balance(self, user_id: str) -> str:
        """The user's balance as the API shows it, e.g. ``"$5.50"``."""
        return format_money(self.state.service.user_balance(user_id))

    def balance_microdollars(self, user_id: str) -> int:
        return self.state.service.user_balance(user_id)

    def advance_clock(self, seconds: float) -> None:
        control.move_clock(self.state, {"advance_seconds": seconds})

    def add_fault(self, operation_id: str, action: str, **rule: Any) -> dict[str, Any]:
        """Add a fault rule, as ``POST /_mock/faults`` does; e.g. to test an SDK's retries::

        quota_mock.add_fault("grantUserBalance", "drop")  # apply the next grant, then hang up
        quota_mock.add_fault("getMe", "fail", status=503, count=2)
        """
        return fault_view(control.add_fault(self.state, {"operation_id": operation_id, "action": action, **rule}))

    # -- the request journal: what the client sent (GET /_mock/requests) ------------------

    def requests(self, operation_id: str | None = None, status: int | str | None = None) -> list[JournalRequest]:
        """The requests the mock answered in this test, oldest first (the HTTP API pages newest
        first), optionally only one operation's or one status' (``402`` or ``"4xx"``)::

            retry = quota_mock.requests("grantUserBalance")[-1]
            assert retry["idempotency"] == "replayed" and retry.json["amount"] == Decimal("1.00")
        """
        journal = journal_of(self.state)
        query = JournalQuery(operation_id=operation_id, status=status, limit=journal.capacity)
        return [JournalRequest(record_view(record)) for record in reversed(query_journal(journal, query).records)]

    def assert_called(
        self, operation_id: str | None, times: int | None = None, where: Where | None = None
    ) -> list[JournalRequest]:
        """Assert that ``operation_id`` was called (exactly ``times`` times, if given), by
        requests satisfying ``where``; returns those calls, oldest first. On failure the
        message lists the closest calls and why each did not match (WireMock's near misses).

        ``where`` is a predicate on the record or, for a more precise message, a mapping of
        fields to values (or to predicates)::

            quota_mock.assert_called("grantUserBalance", times=2, where={"idempotency_key": "order-42"})
            quota_mock.assert_called("getMe", times=0)
        """
        return verify(self.requests(), operation_id, times, where)

    def clear_requests(self) -> None:
        journal_of(self.state).clear()

    def ledger(self) -> list[LedgerEntry]:
        return self.state.service.store.ledger()

    def conservation(self) -> Conservation:
        return self.state.service.conservation()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quota-mock-store",
        default=None,
        metavar="URL",
        help="state store of the quota_mock fixture: memory (default) or redis://HOST:PORT/DB",
    )


@pytest.fixture(scope="session")
def quota_mock_config() -> Mapping[str, Any]:
    """Settings for the session's mock; override this fixture to change them."""
    return {}


@pytest.fixture(scope="session")
def quota_mock_server(quota_mock_config: Mapping[str, Any], pytestconfig: pytest.Config) -> Iterator[MockServer]:
    """The session's mock server, started once on a free loopback port."""
    settings = dict(quota_mock_config)
    store = pytestconfig.getoption("quota_mock_store", default=None)
    if store is not None:
        settings.setdefault("store", store)
    host = settings.pop("host", DEFAULT_HOST)
    settings.pop("port", None)
    with MockServer(create_app(settings), host=host, port=0) as server:
        yield server


@pytest.fixture
def quota_mock(quota_mock_server: MockServer) -> QuotaMock:
    """The running mock, reset to its starting state for this test."""
    handle = QuotaMock(quota_mock_server)
    handle.reset()
    return handle
