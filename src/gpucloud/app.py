"""The application, assembled in one readable function.

A request passes, in order, through:
1. `RequestContextMiddleware` (gpucloud.http.middleware): request id, security headers,
   metrics, access log, and the one error boundary — every exception raised inside is
   answered there by `gpucloud.http.errors.handle`;
2. CORS, when configured (gpucloud.http.cors);
3. Starlette's router, over the routes that the features declare as `Operation`s
   (gpucloud.http.routing): the API key and its scope are checked there, then the
   handler runs one service in one unit of work (gpucloud.db).

Starlette's own error and exception middleware are not in the stack (D57).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from gpucloud import __version__
from gpucloud.ca import CertificateAuthority
from gpucloud.ca import routes as ca_routes
from gpucloud.config import Settings
from gpucloud.console import routes as console_routes
from gpucloud.db import create_database
from gpucloud.http import openapi
from gpucloud.http.auth import API_KEY_HEADER
from gpucloud.http.cache import BodyCache
from gpucloud.http.context import Services
from gpucloud.http.middleware import RequestContextMiddleware
from gpucloud.http.routing import Operation, starlette_routes
from gpucloud.ops import logs
from gpucloud.ops import routes as ops_routes
from gpucloud.ops.metrics import Metrics
from gpucloud.ratelimit import RateLimiter
from gpucloud.ssh_keys import routes as ssh_key_routes

if TYPE_CHECKING:  # loaded only by a server started for tests
    from gpucloud.harness.control import Harness

TITLE = "Cloud Sesterce API"
DESCRIPTION = "The SSH-keys API of a GPU cloud. Authenticate with the x-api-key header."
# HTML pages (the API docs, the console) load only their own files.
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def operations() -> list[Operation]:
    """Every operation the server answers, the hottest first (the router tries them in order)."""
    return [
        *ssh_key_routes.routes.operations,
        *ca_routes.routes.operations,
        *ops_routes.routes.operations,
        *console_routes.routes.operations,
    ]


class GpuCloudApp(Starlette):
    """Starlette's app and router, inside gpucloud's request middleware alone: every
    answer — an error's included — gets its request id, headers, metrics and access-log
    line, and every exception is answered in one place (D57)."""

    def __init__(
        self,
        *,
        services: Services,
        openapi_document: bytes,
        cors: dict[str, Any] | None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        # A plain attribute, read by every request (gpucloud.http.context.services):
        # Starlette's `state` answers through a Python __getattr__, fifteen times slower.
        self.services = services
        self.state.openapi = openapi_document
        self.cors = cors

    def build_middleware_stack(self) -> ASGIApp:
        # In place of Starlette's stack (its error middleware, the user middleware, its
        # exception middleware): each of those two wraps every request and every message
        # sent, to answer what our middleware answers anyway.
        return RequestContextMiddleware(
            self.router, metrics=self.services.metrics, html_csp=HTML_CSP, cors=self.cors
        )


def create_app(settings: Settings, *, testing: Harness | None = None) -> GpuCloudApp:
    """The ASGI app for `settings`; with `testing` (a server started for tests only), also
    its control operations, and its faults around every other operation.

    Raises RouteError (gpucloud.http.routing) or StatementError (gpucloud.db) when a
    route or a statement is declared so that it could not be served.
    """
    database = create_database(settings)
    metrics = Metrics(publish_to=settings.metrics_dir)
    context = Services(
        settings=settings,
        database=database,
        metrics=metrics,
        limiter=RateLimiter(settings, metrics),
        bodies=BodyCache(settings.response_cache_bytes),
        # Built even without a key file: its operations then answer that none is set up.
        ca=CertificateAuthority(settings.ssh_ca_key_file, policy=settings.ssh_cert_policy()),
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        publisher = (
            asyncio.create_task(_publish_every_second(metrics)) if metrics.publish_to else None
        )
        try:
            yield
        finally:
            if publisher is not None:
                publisher.cancel()
                metrics.publish()
            logs.access_log.flush()
            await database.dispose()

    declared = operations()
    served = declared if testing is None else [*declared, *testing.operations]
    routes: list[BaseRoute] = [
        *starlette_routes(served, around=None if testing is None else testing.around),
        Mount("/docs/static", ops_routes.docs_assets),
        Mount("/console/static", console_routes.console_assets),
    ]
    cors = None
    if settings.cors_origins:
        cors = {
            "allow_origins": settings.cors_origins,
            "allow_methods": ["GET", "POST", "PATCH", "DELETE"],
            "allow_headers": [API_KEY_HEADER, "content-type", "idempotency-key", "if-none-match"],
            "expose_headers": ["location", "retry-after", "x-request-id", "etag"],
        }
    document = openapi.document(declared, title=TITLE, version=__version__, description=DESCRIPTION)
    return GpuCloudApp(
        services=context,
        openapi_document=orjson.dumps(document),
        cors=cors,
        routes=routes,
        lifespan=lifespan,
    )


async def _publish_every_second(metrics: Metrics) -> None:
    # A worker of several shares its counts for /metrics (gpucloud.ops.metrics).
    while True:
        await asyncio.sleep(1)
        metrics.publish()


def create_app_from_env() -> GpuCloudApp:
    """Factory for worker processes (`gpucloud serve --workers N`): settings from the
    environment, read once in this process."""
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    return serving_app(settings)


def serving_app(settings: Settings, *, testing: Harness | None = None) -> GpuCloudApp:
    """The app of a serving process, with what lives as long as the process set aside."""
    app = create_app(settings, testing=testing)
    # Everything built so far lives as long as the process: move it out of the garbage
    # collector's sight, so that full collections stay short.
    gc.collect()
    gc.freeze()
    return app
