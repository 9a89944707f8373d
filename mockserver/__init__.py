"""quota-mock: a stateful, contract-driven mock of the Quota Funding API."""

from .config import MockConfig
from .web.app import create_app
from .web.state import mock_state

__all__ = ["MockConfig", "create_app", "mock_state"]
