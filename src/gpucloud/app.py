"""The application, assembled in one readable function."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from gpucloud import __version__
from gpucloud.config import Settings
from gpucloud.console import routes as console_routes
from gpucloud.db import create_database
from gpucloud.http import errors
from gpucloud.http.auth import API_KEY_HEADER
from gpucloud.http.cors import CORS
from gpucloud.http.dispatch import DirectDispatch
from gpucloud.http.middleware import RequestContextMiddleware
from gpucloud.ops import logs
from gpucloud.ops import routes as ops_routes
from gpucloud.ops.metrics import Metrics
from gpucloud.ratelimit import RateLimiter
from gpucloud.ssh_keys import routes as ssh_key_routes
from gpucloud.ssh_keys.schemas import CreateSSHKeyDto, RenameSSHKeyDto

TITLE = "Cloud Sesterce API"
# HTML pages (the API docs, the console) load only their own files.
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


class GpuCloudAPI(FastAPI):
    """FastAPI, with HTTP requests entering through gpucloud's own edge.

    The edge is the request-context middleware (request id, security headers, metrics,
    access log), CORS when configured, and the direct dispatcher for the SSH-key routes;
    whatever the dispatcher does not take goes through FastAPI as usual.
    """

    edge: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.edge(scope, receive, send)
        else:  # lifespan
            await super().__call__(scope, receive, send)

    async def through_fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app for `settings` (read from the environment when None)."""
    settings = settings or Settings()
    database = create_database(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await database.dispose()

    app = GpuCloudAPI(
        title=TITLE,
        version=__version__,
        description="The SSH-keys API of a GPU cloud. Authenticate with the x-api-key header.",
        lifespan=lifespan,
        # /docs is served by ops.routes from the package's own copy of Swagger UI.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.metrics = metrics
    app.state.rate_limiter = RateLimiter(settings, metrics)

    errors.install(app)
    app.include_router(ssh_key_routes.router)
    app.include_router(ops_routes.router)
    app.mount("/docs/static", ops_routes.docs_assets, name="docs-static")
    app.include_router(console_routes.router)
    app.mount("/console/static", console_routes.console_assets, name="console-static")

    edge: ASGIApp = DirectDispatch(
        app,
        fallback=app.through_fastapi,
        routes=ssh_key_routes.router.routes,
    )
    if settings.cors_origins:
        edge = CORS(
            edge,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[API_KEY_HEADER, "content-type", "idempotency-key"],
            expose_headers=["location", "retry-after", "x-request-id"],
        )
    app.edge = RequestContextMiddleware(edge, metrics=metrics, html_csp=HTML_CSP)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and worker processes: settings from the environment."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings)
    # Everything built so far lives as long as the process: move it out of the garbage
    # collector's sight, so that full collections (tens of ms with it) stay short.
    gc.collect()
    gc.freeze()
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the source document's names and conventions."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (CreateSSHKeyDto, RenameSSHKeyDto):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    # Validation problems are answered 400 in the error shape, never FastAPI's 422.
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path_item in schema["paths"].values():
        for operation in path_item.values():
            operation.get("responses", {}).pop("422", None)
    app.openapi_schema = schema
    return schema
