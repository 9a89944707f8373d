"""A private redis-server for the benchmarks: loopback, a free port, no persistence."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from mockserver.server import free_port


@contextmanager
def private_redis() -> Iterator[str]:
    """Start redis-server, yield its URL, stop it. Raises SystemExit without redis-server."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is needed: apt-get install redis-server")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    command = [executable, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory, "--save", "",
               "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(url) as client:
                    client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
