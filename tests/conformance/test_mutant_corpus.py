"""The corpus itself, checked without the conformance suite: a fixed script of plain requests
(mutants/exercise.py) sees every mutant and every variant answer differently from the correct
app. A mutant that cannot be told apart would count as "missed" for no fault of the suite; a
variant that cannot would prove nothing about false failures."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .mutants import MUTANTS, correct_app
from .mutants.exercise import Observation, exercise
from .variants import VARIANTS

BUILDS = {**{name: m.build for name, m in MUTANTS.items()}, **{name: v.build for name, v in VARIANTS.items()}}


@pytest.fixture(scope="module")
def baseline() -> list[Observation]:
    return exercise(correct_app())


@pytest.fixture(scope="module")
def observed() -> dict[str, list[Observation]]:
    # Apps are built one at a time: Werkzeug compiles routes with ``ast``, and CPython 3.11's
    # AST constructor is not safe to run from several threads at once.
    apps = []
    for build in BUILDS.values():
        app = build()
        app.url_map.update()
        apps.append(app)
    # The race mutants mostly wait for a partner request: threads overlap those waits.
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(BUILDS, pool.map(exercise, apps), strict=True))


def test_the_script_is_deterministic_on_the_correct_app(baseline):
    assert exercise(correct_app()) == baseline
    assert len(baseline) > 100


@pytest.mark.parametrize("name", list(BUILDS))
def test_differs_observably_from_the_correct_app(baseline, observed, name):
    differences = [(ours, theirs) for ours, theirs in zip(baseline, observed[name], strict=False) if ours != theirs]
    assert differences or len(baseline) != len(observed[name]), f"{name} answers exactly as the correct app does"
