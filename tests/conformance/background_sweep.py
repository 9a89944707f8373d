"""The mutant sweep (score.sweep, ~300 s of CPU) runs beside the rest of the test session.

The rest of the suite is single-threaded: on CI's two cores one sits idle. So once pytest has
collected tests that use the ``fast_sweep`` fixture, the sweep starts in three spawned processes
(score.sweep with three jobs), those tests move to the end of the session, and
by the time they run their verdicts are mostly ready. A session without them (``-k``, a single
file) never starts it. The verdicts are the ones ``python -m tests.conformance.score --fast`` gives: the
same fresh, identically warmed worker judges every deployment.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from . import score

PENDING: pytest.StashKey[Future[score.Score]] = pytest.StashKey()
# Three workers, on two cores beside the session's own tests: a busy run spends about half its
# time waiting (a pool that must stay quiet, held grants, concurrent requests), so two workers
# left a core idle and the sweep ran 2 minutes past the rest of the session; three fill it. At
# the session's own priority: a lowered one starved the runs whose verdict rests on timing (a
# grant landing while a chat is in flight) under CI's load.
SWEEP_JOBS = 3


def start(config: pytest.Config) -> None:
    """Run the sweep in a daemon thread (which waits on its one worker process)."""
    pending: Future[score.Score] = Future()

    def work() -> None:
        try:
            pending.set_result(score.sweep(fast=True, jobs=SWEEP_JOBS))
        except BaseException as exc:  # reported by the fixture, in the tests that need it
            pending.set_exception(exc)

    threading.Thread(target=work, name="mutant-sweep", daemon=True).start()
    config.stash[PENDING] = pending


def result(config: pytest.Config) -> score.Score:
    """The background sweep's score, or a sweep run now when none was started."""
    pending = config.stash.get(PENDING, None)
    return pending.result() if pending is not None else score.sweep(fast=True)
