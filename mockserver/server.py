"""Serving the mock: granian for the ``quota-mock`` command, waitress in a thread in-process.

granian (a Rust HTTP server) serves the command: it is about twice as fast as waitress for
this app and runs several worker processes on one port. Tests and the pytest plugin need the
app in their own process, to reach its state directly: there :class:`MockServer` runs it on
waitress, in a background thread.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

from flask import Flask
from waitress.server import create_server

# In-process (tests, the pytest plugin) concurrency matters more than raw throughput.
IN_PROCESS_THREADS = 8


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for ``--port 0``: granian binds by number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve(target: str, host: str, port: int, threads: int = 1, workers: int = 1) -> None:
    """Serve the WSGI app factory ``module:function`` on granian until Ctrl-C or SIGTERM.

    Each worker process calls the factory to build its own app.
    """
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        blocking_threads=threads,
        # Errors only: granian warns about threads beyond 2 x cores + 1, which is a choice here.
        log_level=LogLevels.error,
        respawn_failed_workers=True,
    ).serve()


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
        self._server.trigger.pull_trigger(self._close_everything)
        self._thread.join(timeout=5)
        self._thread = None
        self._server.task_dispatcher.shutdown()

    def _close_everything(self) -> None:
        for dispatcher in list(self._server._map.values()):
            dispatcher.close()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
