"""The web console's page and its static files, shipped inside the package.

The page is plain HTML, CSS and JavaScript with no build step; it talks to the public
API with the API key the user signs in with, so the server needs nothing else for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from gpucloud.http.routing import Routes, Success

_STATIC = Path(__file__).parent / "static"

routes = Routes(tags=("Console",))


@routes.get(
    "/console",
    operation_id="console",
    summary="The web console",
    success=Success(200, "The console's page"),
    uses_database=False,
    in_schema=False,
)
async def console(request: Request) -> Response:
    return FileResponse(_STATIC / "index.html", media_type="text/html")


class _Assets(StaticFiles):
    """The page's script and style sheet, revalidated on every load.

    `no-cache` rather than the server's default `no-store`: the browser keeps its copy
    and asks with If-None-Match, so a reload costs a 304, and a new release shows at once.
    """

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "no-cache"
        return response


console_assets = _Assets(directory=_STATIC)
