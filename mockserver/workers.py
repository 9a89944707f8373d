"""``quota-mock --workers N``: several processes serving one listening socket.

The parent binds the socket, then forks N workers; each builds its own app (its own Redis
connections) and runs waitress on the inherited socket, so the kernel hands every new
connection to whichever worker accepts it first. State is shared through Redis only, which
is why the CLI refuses several workers with the memory store.

The parent only supervises: Ctrl-C or SIGTERM is forwarded to the workers as SIGTERM, a
worker that dies is replaced, and a worker that dies right after starting (a crash loop)
stops the whole server with exit code 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType

from flask import Flask
from waitress.server import create_server

# A worker that exits sooner than this after its start is crashing, not being replaced.
_CRASH_LOOP_SECONDS = 2.0
_STOP_TIMEOUT_SECONDS = 10.0


class _Stop(Exception):
    """Raised in the parent by Ctrl-C or SIGTERM."""


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket all workers share; raises OSError when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def supervise(sock: socket.socket, workers: int, threads: int, app_factory: Callable[[], Flask]) -> int:
    """Run ``workers`` forked workers on ``sock`` until Ctrl-C or SIGTERM; the exit code."""
    started: dict[int, float] = {}
    for _ in range(workers):
        pid, at = _fork_worker(sock, threads, app_factory)
        started[pid] = at

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        while True:
            pid, status = os.waitpid(-1, 0)
            started_at = started.pop(pid, None)
            if started_at is None:
                continue
            exit_code = os.waitstatus_to_exitcode(status)
            if time.monotonic() - started_at < _CRASH_LOOP_SECONDS:
                print(f"quota-mock: worker {pid} failed at start (exit {exit_code}); stopping", file=sys.stderr)
                code = 1
                break
            print(f"quota-mock: worker {pid} exited ({exit_code}); starting a replacement", file=sys.stderr)
            new_pid, at = _fork_worker(sock, threads, app_factory)
            started[new_pid] = at
    except _Stop:
        pass
    finally:
        # No second Ctrl-C may interrupt the shutdown and leave workers behind.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        _stop_workers(list(started))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return code


def _fork_worker(sock: socket.socket, threads: int, app_factory: Callable[[], Flask]) -> tuple[int, float]:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid, time.monotonic()
    # The worker: it never returns into the parent's code, and skips the parent's exit hooks.
    code = 1
    try:
        code = _run_worker(sock, threads, app_factory)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_worker(sock: socket.socket, threads: int, app_factory: Callable[[], Flask]) -> int:
    def _on_signal(signum: int, frame: FrameType | None) -> None:
        # Ctrl-C reaches the workers directly and through the parent: stop once, quietly.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    server = None
    try:
        server = create_server(app_factory(), sockets=[sock], threads=threads, clear_untrusted_proxy_headers=True)
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.close()
    return 0


def _stop_workers(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_SECONDS
    remaining = set(pids)
    while remaining and time.monotonic() < deadline:
        for pid in list(remaining):
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                finished = pid
            if finished:
                remaining.discard(pid)
        if remaining:
            time.sleep(0.05)
    for pid in remaining:  # pragma: no cover - a worker stuck past the timeout
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
