"""The ASGI middleware around every request: request id, headers, access log, metrics,
and the one place where an exception becomes an answer.

Plain ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a
memory stream per request.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpucloud.http import errors
from gpucloud.http.context import headers_of
from gpucloud.http.cors import CORS
from gpucloud.ops.logs import Access, access_log
from gpucloud.ops.metrics import Metrics

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_NO_STORE = (b"cache-control", b"no-store")


class RequestContextMiddleware:
    """Gives each request an id and each response the security headers, answers what the
    app raised (through `errors.handle`), then logs the request.

    `cors` holds the CORS options when CORS is on: the app inside is then wrapped in CORS,
    and an error answered here gets the CORS headers that the app's own answers get.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        html_csp: str,
        cors: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app if cors is None else CORS(app, **cors)
        self.metrics = metrics
        self.html_csp = html_csp.encode()
        self.cors = cors
        # Generated request ids: 64 random bits drawn when the app is built (each worker
        # builds its own), then a counter — unique across processes with no system call
        # per request (D56). An id only correlates lines; it is no secret.
        self._id_prefix = os.urandom(8).hex()
        self._ids = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or f"{self._id_prefix}{next(self._ids):016x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = message.get("headers", ())
                cacheable = html = False
                for name, value in headers:
                    if name == b"cache-control":
                        cacheable = True
                    elif name == b"content-type" and value.startswith(b"text/html"):
                        html = True
                headers = [*headers, (b"x-request-id", request_id.encode()), *_COMMON_HEADERS]
                if not cacheable:
                    headers.append(_NO_STORE)
                if html:
                    headers.append((b"content-security-policy", self.html_csp))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Whatever the app raised — a route, the router (an unknown path, a method not
            # allowed), a static file, a bug — is answered here, and only here.
            if response_started:
                raise  # half an answer is out: the server logs it and drops the connection
            response = await errors.handle(Request(scope, receive), exc)
            answer = response if self.cors is None else CORS(response, **self.cors)
            await answer(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.observe(method, route, status, elapsed)
            if access_log.enabled:
                client = scope.get("client")
                access_log.record(
                    Access(
                        request_id,
                        method,
                        scope["path"],
                        route,
                        status,
                        elapsed,
                        client[0] if client else "-",
                        state.get("api_key_id"),
                    )
                )


def _incoming_request_id(scope: Scope) -> str | None:
    value = headers_of(scope).get(b"x-request-id")
    if value is None:
        return None
    text = value.decode("latin-1")
    return text if _REQUEST_ID.fullmatch(text) else None


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths share one label, so that scanners cannot grow the metrics.
    return path if isinstance(path, str) else "<unmatched>"
