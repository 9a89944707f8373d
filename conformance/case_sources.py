"""Where the schema-driven phase's requests come from, per operation, in the order they are sent:

1. ``edges``: the edge inputs of :mod:`conformance.edges`, deterministic;
2. ``coverage``: Schemathesis' coverage phase (examples, boundaries, wrong types, missing
   parts, wrong methods, wrong content types), deterministic, as stock ``st run`` sends it
   (budgeted by time, :data:`COVERAGE_CHUNK` of them per batch);
3. ``positive`` and ``negative``: Hypothesis-generated cases, as stock ``st run`` fuzzes,
   in batches; each batch has its own seed, derived from ``--seed``, so a run is reproducible.

Each source is a lazy iterator of Schemathesis cases: nothing is generated before it is
needed, and generation stops when the phase's time is up.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.generation.case import Case

from mockserver.contract import Contract, Operation

from .edges import edge_cases

DETERMINISTIC = ("edges", "coverage")
# Coverage cases per operation in each batch of a phase budgeted by time (a large schema has
# thousands; each batch also sends generated cases, so no source starves the others).
COVERAGE_CHUNK = 40
GENERATED = ("positive", "negative")
_MODES = {"positive": GenerationMode.POSITIVE, "negative": GenerationMode.NEGATIVE}


class TimeUp(KeyboardInterrupt):
    """Stops a Hypothesis generation loop at once (an ordinary exception would be replayed)."""


def edges(api_operation: Any, operation: Operation, contract: Contract) -> Iterator[Case]:
    for _description, case in edge_cases(api_operation, operation, contract):
        yield case


def coverage(api_operation: Any) -> Iterator[Case]:
    """Schemathesis' coverage-phase cases for the operation, positive and negative."""
    schema = api_operation.schema
    iterate = getattr(schema, "iter_coverage_cases", None)
    if iterate is None:  # an older Schemathesis: the phase is not reachable from outside
        return
    config = schema.config.generation_for(operation=api_operation, phase="coverage")
    yield from iterate(api_operation, generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                       generation_config=config)


def generated(api_operation: Any, source: str, count: int, batch_seed: int,
              deadline: Callable[[], bool]) -> list[Case]:
    """Up to ``count`` Hypothesis-generated cases (fewer when ``deadline()`` says time is up,
    or when the operation has no more distinct inputs to give)."""
    cases: list[Case] = []

    @seed(batch_seed)
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=api_operation.as_strategy(generation_mode=_MODES[source]))
    def collect(case: Case) -> None:
        if deadline():
            raise TimeUp
        cases.append(case)

    # No example database (database=None), so no key for one: as Hypothesis' own find() does,
    # which spares hashing the test's source on every call (3% of a run's CPU).
    collect._hypothesis_internal_database_key = None  # type: ignore[attr-defined]
    with contextlib.suppress(TimeUp, Unsatisfiable):  # out of time, or nothing to generate in this mode
        collect()
    return cases


def batch_seed(run_seed: int, label: str, source: str, batch: int) -> int:
    """A stable seed per run seed, operation, source and batch."""
    return zlib.crc32(f"{run_seed}:{label}:{source}:{batch}".encode())


def past(moment: float) -> Callable[[], bool]:
    return lambda: time.monotonic() >= moment
