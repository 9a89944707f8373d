"""End-to-end fixtures: the real ``quota-mock`` command, serving on a real socket."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

URL_LINE = re.compile(r"at (http://127\.0\.0\.1:\d+)")


@dataclass
class LiveMock:
    process: subprocess.Popen
    base_url: str
    output: list[str] = field(default_factory=list)

    def stop(self) -> int:
        """Ctrl-C, as a person would; returns the exit code and keeps the output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            remaining, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            remaining, _ = self.process.communicate()
        self.output.extend(remaining.splitlines())
        return self.process.returncode


def quota_mock_command() -> list[str]:
    executable = shutil.which("quota-mock")
    return [executable] if executable else [sys.executable, "-m", "mockserver.cli"]


def start_quota_mock(*args: str, timeout: float = 15) -> LiveMock:
    process = subprocess.Popen(
        [*quota_mock_command(), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    base_url = None
    # Read the whole banner: lines left in this reader's buffer would be lost to communicate().
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        match = URL_LINE.search(line)
        base_url = match.group(1) if match else base_url
        if line.startswith("Press Ctrl-C") and base_url:
            live = LiveMock(process, base_url, lines)
            wait_until_serving(live, deadline)
            return live
    process.kill()
    raise AssertionError("quota-mock did not start:\n" + "\n".join(lines))


def wait_until_serving(live: LiveMock, deadline: float) -> None:
    """The banner comes as the server starts; its workers answer a moment later."""
    while True:
        try:
            requests.get(live.base_url + "/v1/packages", timeout=5).raise_for_status()
            return
        except requests.ConnectionError as exc:
            if time.monotonic() > deadline or live.process.poll() is not None:
                live.stop()
                message = "quota-mock printed its banner but never answered:\n" + "\n".join(live.output)
                raise AssertionError(message) from exc
            time.sleep(0.02)


@pytest.fixture
def live_mock() -> Iterator[LiveMock]:
    live = start_quota_mock()
    yield live
    live.stop()
