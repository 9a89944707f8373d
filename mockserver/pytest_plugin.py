"""pytest plugin for SDK authors: a live quota-mock in your test session.

Installed with the kit (entry point ``pytest11``). The server starts once per session on a
free port, in-process, and every test that uses ``quota_mock`` gets it reset to its seed::

    def test_grant(quota_mock):
        client = MySdk(base_url=quota_mock.base_url, api_key=quota_mock.api_key)
        client.grant("user_123", "0.50")
        assert quota_mock.balance("user_123") == "$5.50"

``add_fault`` scripts failures, latency and dropped connections (see ``POST /_mock/faults``).
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
from .domain.money import format_money
from .domain.records import Conservation, LedgerEntry
from .server import MockServer
from .web import control
from .web.app import create_app
from .web.control_presenters import fault_view
from .web.state import MockState, mock_state

__all__ = ["QuotaMock", "quota_mock", "quota_mock_config", "quota_mock_server"]


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
