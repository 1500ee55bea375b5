"""Health, readiness and metrics: the operator's endpoints, open without an API key."""

from __future__ import annotations

from pathlib import Path

import orjson
from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from gpucloud.db import Database
from gpucloud.errors import UnavailableError
from gpucloud.http.schemas import ErrorDto
from gpucloud.ops.metrics import Metrics

router = APIRouter(tags=["Operations"])


_JSON_STATUS = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"status": {"type": "string"}, "database": {"type": "string"}},
                "required": ["status"],
            }
        }
    }
}


@router.get(
    "/healthz",
    summary="The process is alive",
    operation_id="healthz",
    response_class=Response,
    responses={200: {"description": "Alive", **_JSON_STATUS}},
)
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get(
    "/readyz",
    summary="The database answers (503 when it does not)",
    operation_id="readyz",
    response_class=Response,
    responses={
        200: {"description": "Ready: the database answers", **_JSON_STATUS},
        503: {"description": "The database is unreachable", "model": ErrorDto},
    },
)
async def readyz(request: Request) -> Response:
    database: Database = request.app.state.database
    try:
        await database.ping()
    except UnavailableError:
        request.app.state.metrics.dependency_failures.labels("database").inc()
        raise UnavailableError("Not ready: the database is unreachable") from None
    body = {"status": "ok", "database": database.dialect}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


_STATIC = Path(__file__).parent / "static"


@router.get("/docs", include_in_schema=False)
async def docs() -> Response:
    return FileResponse(_STATIC / "docs.html", media_type="text/html")


docs_assets = StaticFiles(directory=_STATIC)
