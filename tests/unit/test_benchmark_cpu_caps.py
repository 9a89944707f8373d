"""benchmarks.cpu_caps holds a process to a share of a core: the held series of the Redis
benchmark rests on it. Only an upper bound is asserted (a cap holds however busy the machine
is); no timing gates anything."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import cpu_caps
from benchmarks.proc_usage import usage

SHARE = 0.2
WATCHED_SECONDS = 1.5


@pytest.fixture
def spinner():
    """A process that spins on the CPU with two threads (it would take two cores if it could)."""
    code = "import threading\nspin = lambda: [None for _ in iter(int, 1)]\n" \
           "threading.Thread(target=spin, daemon=True).start()\nspin()\n"
    process = subprocess.Popen([sys.executable, "-c", code])
    yield process
    process.kill()
    process.wait()


def test_a_held_process_uses_at_most_its_share_and_its_group_is_removed_after(spinner):
    if (why := cpu_caps.unavailable()) is not None:
        pytest.skip(f"per-process CPU quotas are not available here: {why}")
    with cpu_caps.capped([spinner.pid], SHARE, "test"):
        groups = [path for path in cpu_caps._root()[0].iterdir() if path.name.startswith("quota-bench-test-")]
        assert [str(spinner.pid)] == (groups[0] / "cgroup.procs").read_text().split()
        before, started = usage([spinner.pid]), time.monotonic()
        time.sleep(WATCHED_SECONDS)
        after, elapsed = usage([spinner.pid]), time.monotonic() - started
    used = (after - before).cpu_seconds
    # The share of every period, plus one period's worth on either side and a clock tick.
    allowed = SHARE * elapsed + 2 * SHARE * cpu_caps.PERIOD_US / 1e6 + 0.02
    assert used <= allowed, f"a process held to {SHARE} of a core used {used:.2f} s of CPU in {elapsed:.2f} s"
    assert not any(Path(group).exists() for group in groups)
    assert spinner.poll() is None  # still running, back in its old group


def test_without_a_writable_cgroup_the_reason_is_given(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_caps, "_V2", tmp_path / "none")
    monkeypatch.setattr(cpu_caps, "_V1", tmp_path / "none")
    assert cpu_caps.unavailable() == "no cgroup CPU controller is mounted"
