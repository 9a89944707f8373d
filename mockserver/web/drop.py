"""Closing a connection without an answer, after the work is done ("commit then drop").

WSGI has no call for "hang up": what works depends on the server, so this module knows
the two the mock runs on, and both were checked with a raw socket (tests/e2e/test_drop.py):

- waitress (``MockServer``, the pytest plugin) writes the status line lazily, with the
  first chunk of the body. A body iterable that raises waitress' own ``ClientDisconnected``
  before yielding makes it close the connection with nothing written, and log no error.
- granian (``quota-mock``) sends the status line as soon as the app returns, and answers
  500 when the app raises, so no exception can stop it. Instead the client's socket is shut
  down in the kernel before granian writes: it is found among this process' file
  descriptors by its local port and the client's address. granian does not tell the app the
  client's port, so among one address' connections the kernel's TCP_INFO picks the one
  awaiting an answer (data received since the last sent, or never sent any), which keeps
  idle keep-alive connections of the same browser alive. Two requests from one address in
  flight at the same moment cannot be told apart: the most recent is taken.

Anywhere else (the Flask test client) the raising iterable surfaces as an exception in the
caller, the closest a test client gets to a dropped connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from waitress.channel import ClientDisconnected

DROP_ENVIRON_KEY = "quota_mock.drop_connection"
# struct tcp_info (linux/tcp.h): byte offsets of tcpi_last_data_sent and tcpi_last_data_recv
# (milliseconds since data was last sent / received), and tcpi_data_segs_in and
# tcpi_data_segs_out (data segments received and sent, since Linux 4.6).
_TCP_INFO_SIZE = 160
_LAST_DATA_SENT, _LAST_DATA_RECV, _DATA_SEGS_IN, _DATA_SEGS_OUT = 44, 52, 152, 156


class ConnectionDropped(ClientDisconnected):
    """Raised from the body iterable to make the server close without an answer."""


def request_drop(environ: dict[str, Any]) -> None:
    """Ask :class:`DropConnectionMiddleware` to hang up once this request's work is done."""
    environ[DROP_ENVIRON_KEY] = True


class DropConnectionMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = self.app(environ, start_response)
        if not environ.get(DROP_ENVIRON_KEY):
            return result
        close = getattr(result, "close", None)
        if close is not None:
            close()  # the app's own clean-up runs as for any response
        if str(environ.get("SERVER_SOFTWARE", "")).lower().startswith("waitress"):
            return _hang_up()
        werkzeug_socket = environ.get("werkzeug.socket")
        client = werkzeug_socket if isinstance(werkzeug_socket, socket.socket) else None
        if client is not None:
            _shut(client)
            return []
        client = find_client_socket(environ)
        if client is not None:
            with client:
                _shut(client)
            return []
        return _hang_up()


def _hang_up() -> Iterator[bytes]:
    raise ConnectionDropped("quota-mock fault rule: connection dropped after the request was applied")
    yield b""  # pragma: no cover - makes this a generator, raising on first use


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already gone: dropped all the same
        sock.shutdown(socket.SHUT_RDWR)


def find_client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """A duplicate of this request's connection socket, or None (not Linux, or not found)."""
    client_host = _plain_ip(str(environ.get("REMOTE_ADDR", "")))
    try:
        server_port = int(environ.get("SERVER_PORT", ""))
        client_port = int(environ["REMOTE_PORT"]) if environ.get("REMOTE_PORT") else None
        descriptors = os.listdir("/proc/self/fd")
    except (ValueError, OSError):
        return None
    best: tuple[tuple[bool, int], socket.socket] | None = None
    for name in descriptors:
        candidate = _tcp_socket(int(name))
        if candidate is None:
            continue
        rank = None
        try:
            local, peer = candidate.getsockname(), candidate.getpeername()
            if (
                local[1] == server_port
                and _plain_ip(peer[0]) == client_host
                and (client_port is None or peer[1] == client_port)
            ):
                rank = _rank(candidate)
        except OSError:
            rank = None
        if rank is None or (best is not None and best[0] <= rank):
            candidate.close()
            continue
        if best is not None:
            best[1].close()
        best = (rank, candidate)
    return None if best is None else best[1]


def _rank(sock: socket.socket) -> tuple[bool, int] | None:
    """Lower is likelier this request's: awaiting an answer first, then most recent data. None:
    a connection that has received nothing, so sent no request (a pooled client, Node's fetch,
    opens one ahead of need; "time since data was received" then counts from its opening)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    if len(info) > _DATA_SEGS_IN and _u32(info, _DATA_SEGS_IN) == 0:
        return None
    last_sent, last_received = _u32(info, _LAST_DATA_SENT), _u32(info, _LAST_DATA_RECV)
    never_sent = len(info) > _DATA_SEGS_OUT and _u32(info, _DATA_SEGS_OUT) == 0
    awaiting = never_sent or last_received < last_sent
    return (not awaiting, last_received)


def _u32(info: bytes, offset: int) -> int:
    return int(struct.unpack_from("I", info, offset)[0])


def _tcp_socket(fd: int) -> socket.socket | None:
    try:
        if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
            return None
        # A duplicate: closing it leaves the server's descriptor open, while shutdown()
        # acts on the connection itself.
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        sock.close()
        return None
    return sock


def _plain_ip(address: str) -> str:
    return address.removeprefix("::ffff:")
