"""Serving the mock: granian for the ``quota-mock`` command, waitress in a thread in-process.

granian (a Rust HTTP server) serves the command: it is about twice as fast as waitress for
this app and runs several worker processes on one port. Tests and the pytest plugin need the
app in their own process, to reach its state directly: there :class:`MockServer` runs it on
waitress, in a background thread.
"""

from __future__ import annotations

import resource
import socket
import threading
from dataclasses import dataclass
from types import TracebackType

from flask import Flask
from waitress.server import create_server

# In-process (tests, the pytest plugin) concurrency matters more than raw throughput.
IN_PROCESS_THREADS = 8
# Connections waiting to be accepted, per listening socket (the kernel caps it at somaxconn).
LISTEN_BACKLOG = 2048
# A client on any network sends its request headers within this; an idle one is let go.
HEADER_READ_TIMEOUT_MS = 10_000
# Open files are what bounds the connections a worker may hold; some stay for the app itself
# (Redis connections, the seed file, logs).
MAX_OPEN_FILES = 65_536
FILES_KEPT_FOR_THE_APP = 256


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for ``--port 0``: granian binds by number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


WORKERS_KILL_TIMEOUT_SECONDS = 5


def serve(target: str, host: str, port: int, threads: int = 1, workers: int = 1) -> None:
    """Serve the WSGI app factory ``module:function`` on granian until Ctrl-C or SIGTERM.

    Each worker process calls the factory to build its own app. Idle and slow connections
    cannot starve a fresh client (see :func:`connection_limits`).
    """
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    limits = connection_limits()
    Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        blocking_threads=threads,
        backlog=limits.backlog,
        backpressure=limits.backpressure,
        http1_settings=HTTP1Settings(header_read_timeout=limits.header_read_timeout_ms, keep_alive=True),
        # Errors only: granian warns about threads beyond 2 x cores + 1, which is a choice here.
        log_level=LogLevels.error,
        respawn_failed_workers=True,
        # A worker waits for Ctrl-C on an event its signal handler sets, but the kernel may hand
        # the signal to one of its Rust threads, and then nothing wakes it: granian kills a
        # worker still there after this many seconds. Its state is in Redis, or nowhere.
        workers_kill_timeout=WORKERS_KILL_TIMEOUT_SECONDS,
    ).serve()


@dataclass(frozen=True)
class ConnectionLimits:
    backlog: int
    backpressure: int
    header_read_timeout_ms: int


def connection_limits() -> ConnectionLimits:
    """How many connections a worker holds, and how long one may take to send its headers.

    granian's default admits 1,024 connections per worker (``backpressure``, the backlog)
    and waits 30 s for each one's headers: 1,024 connections that never finish theirs (an
    idle browser pool, a slow client, a flood) left the next client unanswered for 30 s.
    Here a worker admits as many connections as it may open files (raising its soft limit to
    the hard one first), and a connection gets :data:`HEADER_READ_TIMEOUT_MS` to send its
    headers, idle keep-alive connections included: past that it is closed.
    """
    files = raise_open_files_limit()
    return ConnectionLimits(
        backlog=LISTEN_BACKLOG,
        backpressure=max(LISTEN_BACKLOG, files - FILES_KEPT_FOR_THE_APP),
        header_read_timeout_ms=HEADER_READ_TIMEOUT_MS,
    )


def raise_open_files_limit(ceiling: int = MAX_OPEN_FILES) -> int:
    """Raise this process's soft limit on open files toward its hard limit; returns the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass  # keep the limit we have
    return ceiling if soft == resource.RLIM_INFINITY else min(soft, ceiling)


class MockServer:
    """A waitress server for one app in a background thread; ``port=0`` picks a free port.

    For the pytest plugin and tests (:meth:`start`/:meth:`stop`, or as a context manager),
    which reach the app's state directly; the ``quota-mock`` command uses :func:`serve`.
    """

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = IN_PROCESS_THREADS) -> None:
        self.app = app
        # clear_untrusted_proxy_headers: the mock is no proxy's backend unless told so.
        self._server = create_server(app, host=host, port=port, threads=threads, clear_untrusted_proxy_headers=True)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MockServer:
        self._thread = threading.Thread(target=self._server.run, name=f"quota-mock:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            self._server.close()
            return
        # Closing from this thread would race the loop (and leave keep-alive connections
        # holding it open); instead the loop closes every socket itself, then ends.
        try:
            self._server.trigger.pull_trigger(self._close_everything)
        except OSError:
            # The loop's wake-up pipe is gone (its descriptor closed under it): close from
            # here; the loop, polling an empty map, ends within its timeout.
            self._close_everything()
        self._thread.join(timeout=5)
        self._thread = None
        self._server.task_dispatcher.shutdown()

    def _close_everything(self) -> None:
        for dispatcher in list(self._server._map.values()):
            try:
                dispatcher.close()
            except OSError:  # a descriptor already gone: off the loop's map all the same
                dispatcher.del_channel()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
