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


@pytest.fixture(scope="module")
def observed() -> dict[str, tuple[list[Observation], float]]:
    # Apps are built one at a time: Werkzeug compiles routes with ``ast``, and CPython 3.11's
    # AST constructor is not safe to run from several threads at once.
    # Variants that mostly wait (latency) go first, so that their waits overlap all the rest.
    names = sorted(BUILDS, key=lambda name: not (name in VARIANTS and VARIANTS[name].waits))
    apps = []
    for name in names:
        app = BUILDS[name]()
        app.url_map.update()
        apps.append(app)
    # The race mutants mostly wait for a partner request: threads overlap those waits.
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(names, pool.map(_timed_exercise, apps), strict=True))


def _timed_exercise(app: Flask) -> tuple[list[Observation], float]:
    started = time.monotonic()
    return exercise(app), time.monotonic() - started


# The correct app answers the whole script in well under a second; a variant that only adds
# latency (50 ms and more a request, over hundreds of requests) takes many times this.
SLOWER_THAN_ANY_CORRECT_RUN_SECONDS = 5.0


def test_the_script_is_deterministic_on_the_correct_app(baseline):
    assert exercise(correct_app()) == baseline
    assert len(baseline) > 100


@pytest.mark.parametrize("name", list(BUILDS))
def test_differs_observably_from_the_correct_app(baseline, observed, name):
    answers, seconds = observed[name]
    differences = [(ours, theirs) for ours, theirs in zip(baseline, answers, strict=False) if ours != theirs]
    if not differences and len(baseline) == len(answers) and name in VARIANTS and VARIANTS[name].waits:
        # A variant of timing only: it answers alike, later.
        assert seconds > SLOWER_THAN_ANY_CORRECT_RUN_SECONDS, f"{name} answers as the correct app does, as fast"
        return
    assert differences or len(baseline) != len(answers), f"{name} answers exactly as the correct app does"
