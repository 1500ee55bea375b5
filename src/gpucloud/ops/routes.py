"""Health, readiness, metrics and the API's documents: open without an API key."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from gpucloud.errors import UnavailableError
from gpucloud.http.context import services
from gpucloud.http.routing import Routes, Success

routes = Routes(tags=("Operations",))
_STATIC = Path(__file__).parent / "static"


class StatusDto(BaseModel):
    """What /healthz and /readyz answer."""

    status: str
    database: str | None = None


@routes.get(
    "/healthz",
    operation_id="healthz",
    summary="The process is alive",
    success=Success(200, "Alive", StatusDto),
    uses_database=False,
)
async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@routes.get(
    "/readyz",
    operation_id="readyz",
    summary="The database answers (503 when it does not)",
    success=Success(200, "Ready: the database answers", StatusDto),
)
async def readyz(request: Request) -> Response:
    context = services(request)
    try:
        await context.database.ping()
    except UnavailableError:
        context.metrics.dependency_failed("database")
        raise UnavailableError("Not ready: the database is unreachable") from None
    body = {"status": "ok", "database": context.database.name}
    return Response(orjson.dumps(body), media_type="application/json")


@routes.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    success=Success(200, "The Prometheus text exposition format", "text/plain"),
    uses_database=False,
)
async def metrics(request: Request) -> Response:
    body = services(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@routes.get(
    "/openapi.json",
    operation_id="openapi",
    summary="This document",
    success=Success(200, "The OpenAPI document"),
    uses_database=False,
    in_schema=False,
)
async def openapi(request: Request) -> Response:
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


@routes.get(
    "/docs",
    operation_id="docs",
    summary="Interactive API docs",
    success=Success(200, "Swagger UI"),
    uses_database=False,
    in_schema=False,
)
async def docs(request: Request) -> Response:
    return FileResponse(_STATIC / "docs.html", media_type="text/html")


docs_assets = StaticFiles(directory=_STATIC)
