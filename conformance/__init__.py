"""quota-conformance: point it at any Quota Funding API deployment and learn whether it
honours the contract (openapi.yaml), safely enough to aim at production."""

from .options import Options, Profile
from .runner import RunReport, run

__all__ = ["Options", "Profile", "RunReport", "run"]
