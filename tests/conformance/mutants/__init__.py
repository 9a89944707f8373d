"""The mutant corpus: realistic deployment bugs, each built on one mock app instance (WSGI
middleware or a replaced service/store method; mockserver itself is untouched), each naming
the conformance rule that must catch it. See tests/conformance/score.py for the harness.
"""

from __future__ import annotations

from . import (  # noqa: F401  (registers)
    access,
    billing,
    display,
    eighth_round,
    fifth_round,
    fourth_round,
    held_out,
    idempotency,
    identity,
    money,
    second_round,
    seventh_round,
    sixth_round,
    spending,
    state,
    statuses,
    third_round,
)
from .expected import EXPECTED_FALSE_FAILURES, EXPECTED_MISSES
from .kit import KEY, KEY2, REGISTRY, Exchange, Mutant, base_app, correct_app, middleware

MUTANTS: dict[str, Mutant] = dict(REGISTRY)
replay_credits_again = idempotency.replay_credits_again

__all__ = [
    "EXPECTED_FALSE_FAILURES",
    "EXPECTED_MISSES",
    "KEY",
    "KEY2",
    "MUTANTS",
    "Exchange",
    "Mutant",
    "base_app",
    "correct_app",
    "middleware",
    "replay_credits_again",
]
