"""A private redis-server for the benchmarks: loopback, a free port, no persistence."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from mockserver.server import free_port


@dataclass(frozen=True)
class RedisUnderTest:
    url: str
    pid: int


@contextmanager
def private_redis(unix_socket: bool = False) -> Iterator[RedisUnderTest]:
    """Start redis-server, yield its URL and pid, stop it. Raises SystemExit without redis-server.

    ``unix_socket``: it listens on a unix socket, not on TCP (a ``unix://`` URL), as a Redis
    on the workers' own host may."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is needed: apt-get install redis-server")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    command = [executable, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory, "--save", "",
               "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    if unix_socket:
        path = f"{directory}/redis.sock"
        command[command.index("--port") + 1] = "0"  # no TCP listener
        command += ["--unixsocket", path, "--unixsocketperm", "700"]
        url = f"unix://{path}?db=0"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        yield RedisUnderTest(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
