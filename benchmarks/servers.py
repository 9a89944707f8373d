"""Starting the three servers under test as separate processes, and timing their start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import requests

from .tools import ROOT

READY_PATH = "/v1/packages"


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    base_url: str
    startup_seconds: float

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start(name: str, argv: Sequence[str], port: int, timeout: float = 60) -> Server:
    """Spawn a server and wait for its first good response; the wait is its start-up time."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = started + timeout
    while time.perf_counter() < deadline:
        try:
            if requests.get(base_url + READY_PATH, timeout=1).status_code == 200:
                return Server(name, process, base_url, time.perf_counter() - started)
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before answering")
        time.sleep(0.005)
    process.kill()
    raise RuntimeError(f"{name} did not answer within {timeout} s")


def mock_argv(port: int) -> list[str]:
    # As users run it: the quota-mock command, with a pool large enough for a long load run.
    return [sys.executable, "-m", "mockserver.cli", "--port", str(port), "--quiet", "--pool", "100000000"]


def mock_threads_argv(threads: int):
    """quota-mock with more Python threads than its default one: shows what the GIL costs."""

    def argv(port: int) -> list[str]:
        return [*mock_argv(port), "--threads", str(threads)]

    return argv


def mock_redis_argv(url: str, workers: int, journal: bool = True):
    """quota-mock on the Redis store with ``workers`` worker processes, a namespace of its own;
    ``journal=False``: with its request journal switched off (``--journal-size 0``)."""

    def argv(port: int) -> list[str]:
        prefix = f"bench-{workers}w-{port}:"
        command = [*mock_argv(port), "--store", url, "--store-prefix", prefix, "--workers", str(workers)]
        return command if journal else [*command, "--journal-size", "0"]

    return argv


def bare_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bare_app", "--port", str(port)]


def prism_argv(prism: str, port: int) -> list[str]:
    return [prism, "mock", str(ROOT / "openapi.yaml"), "--host", "127.0.0.1", "--port", str(port), "--errors", "false"]
