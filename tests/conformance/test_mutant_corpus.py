"""The corpus itself, checked without the conformance suite: a fixed script of plain requests
(mutants/exercise.py) sees every mutant and every variant answer differently from the correct
app. A mutant that cannot be told apart would count as "missed" for no fault of the suite; a
variant that cannot would prove nothing about false failures."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask

from .mutants import MUTANTS, correct_app
from .mutants.exercise import Observation, exercise
from .variants import VARIANTS

BUILDS = {**{name: m.build for name, m in MUTANTS.items()}, **{name: v.build for name, v in VARIANTS.items()}}


@pytest.fixture(scope="module")
def baseline() -> list[Observation]:
    return exercise(correct_app())


# The correct app answers the whole script in well under a second; a variant that only adds
# latency (50 ms and more a request, over hundreds of requests) takes many times this.
SLOWER_THAN_ANY_CORRECT_RUN_SECONDS = 5.0


def _waits(name: str) -> bool:
    return name in VARIANTS and VARIANTS[name].waits


@pytest.fixture(scope="module")
def observed(baseline) -> dict[str, list[Observation]]:
    # Apps are built one at a time: Werkzeug compiles routes with ``ast``, and CPython 3.11's
    # AST constructor is not safe to run from several threads at once.
    # Variants that mostly wait (latency) go first, so that their waits overlap all the rest.
    names = sorted(BUILDS, key=lambda name: not _waits(name))
    apps = []
    for name in names:
        app = BUILDS[name]()
        app.url_map.update()
        apps.append(app)

    def observe(name: str, app: Flask) -> list[Observation]:
        # Each stops at its first difference; a variant that only waits may differ in time
        # alone, shown once it has taken longer than any correct run.
        slower_than = SLOWER_THAN_ANY_CORRECT_RUN_SECONDS if _waits(name) else None
        return exercise(app, until_it_differs_from=baseline, slower_than=slower_than)

    # The race mutants mostly wait for a partner request: threads overlap those waits.
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(names, pool.map(observe, names, apps), strict=True))


def test_the_script_is_deterministic_on_the_correct_app(baseline):
    assert exercise(correct_app()) == baseline
    assert len(baseline) > 100


def test_the_correct_app_is_never_stopped_as_slow_or_different(baseline):
    """The early stops cannot pass an app that answers as the correct one does, as fast."""
    started = time.monotonic()
    assert exercise(correct_app(), until_it_differs_from=baseline, slower_than=SLOWER_THAN_ANY_CORRECT_RUN_SECONDS) \
        == baseline
    assert time.monotonic() - started < SLOWER_THAN_ANY_CORRECT_RUN_SECONDS


@pytest.mark.parametrize("name", list(BUILDS))
def test_differs_observably_from_the_correct_app(baseline, observed, name):
    answers = observed[name]
    differences = [(ours, theirs) for ours, theirs in zip(baseline, answers, strict=False) if ours != theirs]
    assert differences or len(baseline) != len(answers), f"{name} answers exactly as the correct app does, as fast"
