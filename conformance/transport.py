"""In-process transport: a requests adapter that hands requests to a WSGI app.

The suite always talks through one ``requests.Session`` (the guarded session of
:mod:`conformance.safety`); mounting this adapter lets the same code drive a Flask app in
the same process, without sockets. Tests use it to run the suite against the mock and its
mutants quickly; the CLI uses real HTTP.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3 import HTTPHeaderDict, HTTPResponse
from werkzeug.test import EnvironBuilder, run_wsgi_app

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WSGIAdapter(BaseAdapter):
    def __init__(self, app: WsgiApp) -> None:
        super().__init__()
        self.app = app

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Mapping[str, str] | None = None) -> requests.Response:
        url = urlsplit(request.url or "")
        body = request.body.encode() if isinstance(request.body, str) else (request.body or b"")
        builder = EnvironBuilder(
            path=url.path or "/",
            query_string=url.query,
            method=request.method or "GET",
            headers=list(request.headers.items()),
            data=body,
            base_url=f"{url.scheme}://{url.netloc}",
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        app_iter, status, headers = run_wsgi_app(self.app, environ, buffered=True)
        try:
            content = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        raw = HTTPResponse(
            body=io.BytesIO(content),
            headers=HTTPHeaderDict(list(headers.items())),
            status=int(status.split(" ", 1)[0]),
            reason=status.split(" ", 1)[1] if " " in status else "",
            preload_content=False,
            decode_content=False,
            version=11,
            request_method=request.method,
            request_url=request.url,
        )
        return HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        pass
