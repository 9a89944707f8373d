"""The proxy's HTTP side: relay every request to the upstream unchanged, and its answer back.

A threaded server from the standard library, since what matters here is control over the
bytes, not throughput: the request goes out with its method, path, query, headers and body
as the client sent them (hop-by-hop headers aside, as RFC 9110 asks of a proxy); the answer
comes back with its status, headers and body as the upstream sent them, compressed or not,
each chunk written on as it arrives, so that server-sent events reach the client live.
When the upstream hangs up without an answer the client's connection is closed the same way,
so a client's retry logic meets what it would meet without the proxy.

Once an exchange is over, it goes to ``observe`` (the judge), off the request's thread.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError
from urllib3.util import SKIP_HEADER

from .observed import MAX_JUDGED_BODY, ObservedExchange, decoded, scrub, scrub_request_headers

# Headers of one connection, not of the message (RFC 9110, section 7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
REPORT_PATH = "/_proxy/report"
_CHUNK = 64 * 1024


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True  # a stream still open at shutdown does not hold the process
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        upstream: str,
        begin: Callable[[ObservedExchange], None],
        observe: Callable[[ObservedExchange], None],
        report: Callable[[], dict[str, Any]],
        timeout: float = 300.0,
    ) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream.rstrip("/")
        self.begin = begin
        self.observe = observe
        self.report = report
        # One pool for every client thread; no retries: a request is sent once, as the client sent it.
        self.pool = urllib3.PoolManager(maxsize=32, retries=False, timeout=urllib3.Timeout(connect=10.0, read=timeout))
        self._order = itertools.count(1)
        self._order_lock = threading.Lock()

    def start(self, exchange: ObservedExchange) -> None:
        with self._order_lock:
            exchange.started = next(self._order)
        self.begin(exchange)

    def finish(self, exchange: ObservedExchange) -> None:
        # Numbered and handed over under one lock: the judge receives exchanges in the order they ended.
        with self._order_lock:
            exchange.ended = next(self._order)
            self.observe(exchange)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The answer goes out in pieces (headers, then the body as it arrives): with Nagle's
    # algorithm on, a piece waits for the client's delayed ACK of the last, 40 ms a request.
    disable_nagle_algorithm = True
    server: ProxyServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == REPORT_PATH:
            self._send_report()
        else:
            self._relay()

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's parameter name
        pass  # the judge prints what matters; a request log could carry what the proxy must not print

    def _send_report(self) -> None:
        body = json.dumps(self.server.report(), indent=2).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _relay(self) -> None:
        server = self.server
        body = self._read_body()
        headers, scope, secrets = scrub_request_headers(list(self.headers.items()))
        exchange = ObservedExchange(
            method=self.command,
            target=self.path,
            request_headers=headers,
            request_body=scrub(body, secrets),
            scope=scope,
            started=0,
            upstream_url=server.upstream + self.path,
        )
        server.start(exchange)
        outgoing = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        outgoing.pop("Host", None)
        outgoing.setdefault("User-Agent", SKIP_HEADER)  # none added that the client did not send
        outgoing.setdefault("Accept-Encoding", SKIP_HEADER)
        began = time.perf_counter()
        try:
            upstream = server.pool.urlopen(
                self.command,
                exchange.upstream_url,
                body=body if body or self.command in ("POST", "PUT", "PATCH") else None,
                headers=outgoing,
                redirect=False,
                preload_content=False,
                decode_content=False,
            )
        except (NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            self._unreachable(exc)
            exchange.complete = False
        except HTTPError:
            self.close_connection = True  # sent, but no answer came: the client gets none either
            exchange.complete = False
        else:
            kept = self._relay_response(upstream, exchange)
            exchange.response_body = scrub(decoded(kept, upstream.headers.get("Content-Encoding")), secrets)
        exchange.elapsed = time.perf_counter() - began
        server.finish(exchange)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _relay

    def _relay_response(self, upstream: Any, exchange: ObservedExchange) -> bytes:
        """Send the upstream's answer on as it arrives; the body as sent, for the judge."""
        exchange.status, exchange.reason = upstream.status, upstream.reason or ""
        exchange.response_headers = list(upstream.headers.items())
        chunked = "chunked" in (upstream.headers.get("Transfer-Encoding") or "").lower()
        length = upstream.headers.get("Content-Length")
        self.send_response_only(upstream.status, upstream.reason)
        for name, value in exchange.response_headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        delimited = length is not None or self.command == "HEAD" or upstream.status in (204, 304)
        if not delimited:
            # No length known in advance: re-chunk to the client, each upstream piece as it comes.
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        kept: list[bytes] = []
        size = 0
        try:
            pieces = upstream.read_chunked(decode_content=False) if chunked else _pieces(upstream)
            for piece in pieces:
                if not piece:
                    continue
                self.wfile.write(piece if delimited else b"%x\r\n%b\r\n" % (len(piece), piece))
                size += len(piece)
                if size <= MAX_JUDGED_BODY:
                    kept.append(piece)
            if not delimited:
                self.wfile.write(b"0\r\n\r\n")
        except (ProtocolError, HTTPError, OSError):
            # The upstream (or the client) went away mid-answer: cut the client off as well.
            self.close_connection = True
            exchange.complete = False
        finally:
            upstream.release_conn()
        if size > MAX_JUDGED_BODY:
            exchange.complete = False
        return b"".join(kept)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _unreachable(self, exc: Exception) -> None:
        message = f"quota-conformance proxy: the upstream is unreachable ({type(exc).__name__})"
        body = json.dumps({"error": {"code": "proxy_upstream_unreachable", "message": message}}).encode()
        self.send_response(502)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _pieces(upstream: Any) -> Any:
    """The body as it arrives: whatever the socket has, not a fixed size (an event stream
    without chunked encoding must not wait for a full buffer)."""
    while True:
        piece = upstream.read1(_CHUNK, decode_content=False)
        if not piece:
            return
        yield piece
