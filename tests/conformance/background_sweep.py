"""The mutant sweep (score.sweep, ~300 s of CPU) runs beside the rest of the test session.

The rest of the suite is single-threaded: on CI's two cores one sits idle. So once pytest has
collected tests that use the ``fast_sweep`` fixture, the sweep starts in one spawned process
(score.sweep with one job), those tests move to the end of the session, and by the time they
run their verdicts are mostly ready. A session without them (``-k``, a single file) never
starts it. The verdicts are the ones ``python -m tests.conformance.score --fast`` gives: the
same fresh, identically warmed worker judges every deployment.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from . import score

PENDING: pytest.StashKey[Future[score.Score]] = pytest.StashKey()


def start(config: pytest.Config) -> None:
    """Run the sweep in a daemon thread (which waits on its one worker process)."""
    pending: Future[score.Score] = Future()

    def work() -> None:
        try:
            pending.set_result(score.sweep(fast=True, jobs=1))
        except BaseException as exc:  # reported by the fixture, in the tests that need it
            pending.set_exception(exc)

    threading.Thread(target=work, name="mutant-sweep", daemon=True).start()
    config.stash[PENDING] = pending


def result(config: pytest.Config) -> score.Score:
    """The background sweep's score, or a sweep run now when none was started."""
    pending = config.stash.get(PENDING, None)
    return pending.result() if pending is not None else score.sweep(fast=True)
