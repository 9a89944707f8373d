"""A private ``redis-server`` for the tests: on 127.0.0.1, a free port, a temporary directory.

Tests never touch a Redis they did not start. One server is shared by the session (and
flushed between tests); fault tests start their own so that they can stop and restart it.
When ``redis-server`` is not installed the Redis tests are skipped, except in CI (the ``CI``
environment variable is set), where a missing Redis is a failure.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from mockserver.server import free_port


def require_redis_server() -> str:
    """The ``redis-server`` executable; skips the test (fails it in CI) when there is none."""
    executable = shutil.which("redis-server")
    if executable is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the Redis tests", pytrace=False)
        pytest.skip(message)
    return executable


class PrivateRedis:
    """One redis-server process this test run owns; restartable on the same port."""

    def __init__(self, *, persistent: bool = False) -> None:
        self.executable = require_redis_server()
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="quota-mock-redis-"))
        # Persistent: an fsync'ed append-only file, so a killed and restarted server comes
        # back with exactly the writes it acknowledged (the fault tests need that).
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5)

    def start(self, timeout: float = 10) -> PrivateRedis:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        command = [
            self.executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            *persistence,
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self.client() as client:
                    if client.ping():
                        return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                if self.process.poll() is not None:
                    break
                time.sleep(0.02)
        log = (self.directory / "redis.log").read_text(errors="replace") if self.directory.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log[-2000:]}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: PrivateRedis | None = None


def shared_redis() -> PrivateRedis:
    """The session's Redis, started on first use and stopped when the test run ends."""
    global _shared
    if _shared is None or _shared.process is None or _shared.process.poll() is not None:
        _shared = PrivateRedis().start()
        atexit.register(_shared.close)
    return _shared
