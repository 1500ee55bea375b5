"""The router: every route declared once, as an `Operation`.

A feature's `routes.py` declares its operations with a `Routes` collector:

    routes = Routes(prefix="/gpu-cloud/ssh-keys", tags=("GPUCloudSSHKeys",))

    @routes.get("", operation_id="GPUCloudSSHKeysController_getUserSSHKeys", scope=SSH_KEYS, ...)
    async def list_ssh_keys(request: Request, actor: Actor) -> Response: ...

From those declarations come both the routes that Starlette serves (`starlette_routes`)
and the OpenAPI document (gpucloud.http.openapi). An operation with a `scope` is
authenticated before its handler runs — the API key first, then its scope, before the
handler reads anything of the request (SPEC 2 and 8) — and its handler receives the
caller as `actor`; an operation without one is open and its handler takes only the
request. A handler whose signature does not fit is refused when the app is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gpucloud.api_keys.service import SCOPES
from gpucloud.audit.service import Actor
from gpucloud.http.auth import authenticate

Handler = Callable[..., Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
# Wraps each operation's endpoint; only a server started for tests has one (its faults).
Around = Callable[["Operation", Endpoint], Endpoint]

# What each error status means, as the OpenAPI document describes it.
ERROR_DESCRIPTIONS = {
    400: "Invalid request (body, name, key or filter): the message says what to change",
    403: "API key invalid, or lacking the scope this operation needs",
    404: "API key not found, or SSH key not found",
    408: "The request body did not arrive in time",
    409: "The same public key or name is already registered",
    413: "Request body over 64 KiB",
    415: "Body not sent as application/json",
    429: "Rate limit exceeded; see Retry-After",
    501: "This server is not set up for this operation; retrying will not help",
    503: "The database is unavailable; retry after Retry-After seconds",
}


class RouteError(Exception):
    """A route declared so that it could not be served (found when the app is built)."""


@dataclass(frozen=True)
class Success:
    """The success answer of an operation, as documented."""

    status: int
    description: str
    # A pydantic model (or a list of one), "text/plain", or None for no body.
    body: type[BaseModel] | tuple[type[BaseModel]] | str | None = None
    # Responses documented beside the success one, e.g. {304: "Not modified"}.
    also: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One method on one path: its handler, its documentation and its access rule."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    success: Success
    tags: tuple[str, ...] = ()
    # The API-key scope the caller needs; None for an open operation (no API key).
    scope: str | None = None
    # A pydantic model the handler reads as its JSON body (after authentication).
    body: type[BaseModel] | None = None
    # Whether a request must send that body (False: it may send none at all).
    body_required: bool = True
    # OpenAPI parameter objects beyond the API key (path, query, headers).
    parameters: tuple[Mapping[str, Any], ...] = ()
    # Error statuses particular to this operation; those that follow from its scope,
    # its body and its database (403/404/429, 400/408/413/415, 503) are added.
    errors: tuple[int, ...] = ()
    # What an error status means for this operation, where it says more than
    # ERROR_DESCRIPTIONS (which describes every other status).
    error_descriptions: Mapping[int, str] = field(default_factory=dict)
    uses_database: bool = True
    in_schema: bool = True

    def error_statuses(self) -> list[int]:
        """Every error status the operation can answer, in order."""
        statuses = set(self.errors)
        if self.scope is not None:
            statuses |= {403, 404, 429}
        if self.body is not None:
            statuses |= {400, 408, 413, 415}
        if self.uses_database:
            statuses.add(503)
        return sorted(statuses)

    def endpoint(self) -> Endpoint:
        """The function Starlette calls with the request: authentication, then the handler."""
        _check_signature(self)
        handler = self.handler
        scope = self.scope
        if scope is None:
            return handler

        async def authenticated(request: Request) -> Response:
            actor: Actor = await authenticate(request, scope)
            return await handler(request, actor)

        authenticated.__name__ = handler.__name__
        return authenticated


class Routes:
    """Collects a feature's operations: `@routes.get(path, ...)` and its siblings."""

    def __init__(self, prefix: str = "", tags: Iterable[str] = ()) -> None:
        self.prefix = prefix
        self.tags = tuple(tags)
        self.operations: list[Operation] = []

    def get(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self._declare("GET", path, declaration)

    def post(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self._declare("POST", path, declaration)

    def patch(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self._declare("PATCH", path, declaration)

    def delete(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self._declare("DELETE", path, declaration)

    def _declare(
        self, method: str, path: str, declaration: dict[str, Any]
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            declaration.setdefault("tags", self.tags)
            self.operations.append(
                Operation(method=method, path=self.prefix + path, handler=handler, **declaration)
            )
            return handler

        return register


def starlette_routes(operations: Iterable[Operation], around: Around | None = None) -> list[Route]:
    """One Starlette route per operation, in the order declared (the first match wins),
    each serving `around(operation, endpoint)` when `around` is given.

    Raises RouteError for a handler that cannot be called as its operation says, or for
    two operations with one id or on one method and path.
    """
    seen_ids: set[str] = set()
    seen_routes: set[tuple[str, str]] = set()
    routes = []
    for operation in operations:
        if operation.operation_id in seen_ids:
            raise RouteError(f"two operations are called {operation.operation_id}")
        if (operation.method, operation.path) in seen_routes:
            raise RouteError(f"two operations answer {operation.method} {operation.path}")
        seen_ids.add(operation.operation_id)
        seen_routes.add((operation.method, operation.path))
        endpoint = operation.endpoint()
        if around is not None:
            endpoint = around(operation, endpoint)
        routes.append(
            Route(
                operation.path,
                _Served(endpoint),
                methods=[operation.method],
                name=operation.operation_id,
                include_in_schema=operation.in_schema,
            )
        )
    return routes


class _Served:
    """An endpoint as the ASGI app of its route.

    Starlette wraps a plain function endpoint in a second exception-handling layer of its
    own, per route; an ASGI app it calls as it is, and what the endpoint raises goes to
    the one handler of the app (gpucloud.http.errors), as every other exception does.
    """

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def _check_signature(operation: Operation) -> None:
    handler = operation.handler
    wanted = ["request", "actor"] if operation.scope is not None else ["request"]
    problem = None
    if not inspect.iscoroutinefunction(handler):
        problem = "is not an async function"
    else:
        parameters = list(inspect.signature(handler).parameters.values())
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if len(parameters) != len(wanted) or any(
            p.kind not in positional or p.default is not p.empty for p in parameters
        ):
            problem = f"takes ({', '.join(p.name for p in parameters)})"
    if operation.scope is not None and operation.scope not in SCOPES:
        raise RouteError(
            f"{operation.operation_id} needs the scope {operation.scope!r}, which no API key "
            f"can have; use one of {', '.join(SCOPES)}"
        )
    if problem is not None:
        raise RouteError(
            f"the handler of {operation.operation_id}, {handler.__qualname__}, {problem}; "
            f"it must be `async def {handler.__name__}({', '.join(wanted)})`"
            + (" because the operation has a scope" if operation.scope else "")
        )
