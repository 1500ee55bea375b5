"""CORS, off unless configured, with refusals in the API's error shape."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gpucloud.http.errors import error_response


class CORS(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflight says why in SPEC 3's shape
    instead of a plain-text body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code == 400:
                    reason = bytes(response.body).decode(errors="replace")
                    response = error_response(
                        Request(scope),
                        400,
                        f"CORS preflight refused: {reason}; the server allows only its "
                        "configured origins, methods and headers",
                        headers={k: v for k, v in response.headers.items() if k.startswith("vary")},
                    )
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
