"""The router refuses, when the app is built, routes that it could not serve."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response

from gpucloud.audit.service import Actor
from gpucloud.http.routing import Endpoint, Operation, RouteError, Success, starlette_routes


async def open_handler(request: Request) -> Response:
    return Response()


async def authenticated_handler(request: Request, actor: Actor) -> Response:
    return Response()


async def handler_with_extra(request: Request, actor: Actor, extra: int) -> Response:
    return Response()


def sync_handler(request: Request) -> Response:
    return Response()


def _operation(handler: object, *, scope: str | None = None, op_id: str = "op") -> Operation:
    return Operation(
        method="GET",
        path="/x",
        handler=handler,  # type: ignore[arg-type]
        operation_id=op_id,
        summary="x",
        success=Success(200, "ok"),
        scope=scope,
    )


@pytest.mark.parametrize(
    ("handler", "scope", "complaint"),
    [
        (
            authenticated_handler,
            None,
            r"takes \(request, actor\).*async def authenticated_handler\(request\)",
        ),
        (
            open_handler,
            "ssh-keys",
            r"takes \(request\).*\(request, actor\)` because the operation has a scope",
        ),
        (handler_with_extra, "ssh-keys", r"takes \(request, actor, extra\)"),
        (sync_handler, None, "is not an async function"),
        (
            authenticated_handler,
            "admin",
            "needs the scope 'admin', which no API key can have; use one of ssh-keys",
        ),
    ],
)
def test_a_handler_whose_signature_does_not_fit_is_refused(
    handler: object, scope: str | None, complaint: str
) -> None:
    """If a handler cannot be called as its operation says (open: request; with a scope:
    request and actor; always async), then building the routes fails and says how to fix it."""
    with pytest.raises(RouteError, match=complaint):
        starlette_routes([_operation(handler, scope=scope)])


def test_fitting_handlers_are_accepted() -> None:
    """If handlers fit their operations, then each becomes one route named by its id."""
    routes = starlette_routes(
        [
            _operation(open_handler, op_id="a"),
            Operation(
                method="POST",
                path="/x",
                handler=authenticated_handler,
                operation_id="b",
                summary="x",
                success=Success(201, "ok"),
                scope="ssh-keys",
            ),
        ]
    )
    assert [route.name for route in routes] == ["a", "b"]


def test_two_operations_with_one_id_or_one_route_are_refused() -> None:
    """If two operations share an id, or a method and path, then building the routes fails."""
    with pytest.raises(RouteError, match="two operations are called a"):
        starlette_routes([_operation(open_handler, op_id="a"), _operation(open_handler, op_id="a")])
    with pytest.raises(RouteError, match="two operations answer GET /x"):
        starlette_routes([_operation(open_handler, op_id="a"), _operation(open_handler, op_id="b")])


def test_around_wraps_every_endpoint_and_none_without_it() -> None:
    """If routes are built with `around`, then each route serves what it made of its
    operation's endpoint; without it, the operation's endpoint itself."""
    seen: list[str] = []

    def around(operation: Operation, endpoint: Endpoint) -> Endpoint:
        seen.append(operation.operation_id)

        async def wrapped(request: Request) -> Response:
            return await endpoint(request)

        return wrapped

    operations = [_operation(open_handler, op_id="a")]
    (wrapped,) = starlette_routes(operations, around=around)
    assert seen == ["a"]
    # Each route's ASGI app serves one endpoint (gpucloud.http.routing._Served).
    assert wrapped.endpoint.endpoint.__name__ == "wrapped"
    (plain,) = starlette_routes(operations)
    assert plain.endpoint.endpoint is open_handler
