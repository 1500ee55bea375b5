"""The direct dispatcher: the API's own routes without FastAPI's per-request layers.

FastAPI declares every route — that is where the OpenAPI document and /docs come from —
but answering a request through it costs five middleware layers, its router and its
request handler: about 170 µs of a 550 µs list request under load (docs/benchmarks.md).
The SSH-key handlers take only the request and map their own errors, so they need none
of that. This dispatcher matches those routes itself, in FastAPI's order and with its
compiled path patterns, and calls their handlers directly; anything else (other routes,
a wrong method, an unknown path) goes on to FastAPI unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gpucloud.errors import GpuCloudError
from gpucloud.http.errors import RequestProblem, error_response, response_for


class DirectDispatch:
    """ASGI app: the given routes answered directly, everything else by `fallback`.

    `routes` are an APIRouter's own routes, included in the app without a further prefix
    (their paths and patterns are then the app's); their handlers take only the request.
    """

    def __init__(self, app: FastAPI, fallback: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.fallback = fallback
        self.routes = [route for route in routes if isinstance(route, APIRoute)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        # HEAD is GET without a body (the server drops the body).
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        allowed: list[str] = []
        for route in self.routes:
            match = route.path_regex.match(path)
            if match is None:
                continue
            methods: set[str] = route.methods or set()
            if method not in methods:
                allowed.extend(methods)
                continue
            scope["app"] = self.app
            scope["path_params"] = match.groupdict()
            scope["route"] = route
            request = Request(scope, receive)
            try:
                response = await route.endpoint(request)
            except (GpuCloudError, RequestProblem) as exc:
                response = response_for(request, exc)
            await response(scope, receive, send)
            return
        if allowed:  # the path is ours, the method is not: say which ones are
            scope["app"] = self.app
            methods_text = ", ".join(sorted(set(allowed)))
            response = error_response(
                Request(scope, receive),
                405,
                f"{scope['method']} is not allowed on {path}; use {methods_text}",
                headers={"Allow": methods_text},
            )
            await response(scope, receive, send)
            return
        await self.fallback(scope, receive, send)
