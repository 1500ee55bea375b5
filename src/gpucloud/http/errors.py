"""The one error shape (SPEC 3), and the one handler that turns exceptions into it.

Every error leaves the server as
`{"statusCode", "timestamp", "path", "message", "error"[, "details"]}`, whether a
service raised it (a domain error), the framework did (an unknown path, a method not
allowed), the request was at fault (size, media type), or a bug did (500, with no
internals). `handle` is that handler, called for every exception by the request
middleware (gpucloud.http.middleware); `status_of` is the one map from domain errors to
status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gpucloud.errors import (
    AuthenticationError,
    ConflictError,
    FieldProblem,
    ForbiddenError,
    GpuCloudError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    RateLimitedError,
    UnavailableError,
    UnknownAPIKeyError,
)
from gpucloud.wire import iso_timestamp

log = logging.getLogger("gpucloud.errors")

# Most specific first: UnknownAPIKeyError is an AuthenticationError.
_STATUS: tuple[tuple[type[GpuCloudError], int], ...] = (
    (UnknownAPIKeyError, 404),
    (AuthenticationError, 403),
    (ForbiddenError, 403),
    (InvalidInputError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (RateLimitedError, 429),
    (NotSupportedError, 501),
    (UnavailableError, 503),
)
INTERNAL_ERROR = "Something went wrong on our side; the error has been logged"


class RequestProblem(Exception):
    """A problem with the HTTP request itself (size, media type), not with its meaning."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_of(exc: GpuCloudError) -> int:
    """The HTTP status for a domain error."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_body(
    status: int, path: str, message: str, details: list[FieldProblem] | None = None
) -> bytes:
    """The JSON of SPEC 3's error shape."""
    body: dict[str, Any] = {
        "statusCode": status,
        "timestamp": iso_timestamp(),
        "path": path,
        "message": message,
        "error": HTTPStatus(status).phrase,
    }
    if details:
        body["details"] = [{"field": d.field, "message": d.message} for d in details]
    return orjson.dumps(body)


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    details: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response in the SPEC's error shape."""
    return Response(
        error_body(status, request.url.path, message, details),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def handle(request: Request, exc: Exception) -> Response:
    """The response for any exception a route (or the framework around it) raised."""
    if isinstance(exc, RequestProblem):
        return error_response(request, exc.status, exc.message)
    if isinstance(exc, GpuCloudError):
        return _domain_error(request, exc)
    if isinstance(exc, HTTPException):
        return _framework_error(request, exc)
    # Anything else is a bug: logged with the request's id, answered without internals.
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={
            "request_id": request.scope.get("state", {}).get("request_id"),
            "path": request.url.path,
        },
    )
    return error_response(request, 500, INTERNAL_ERROR)


def _domain_error(request: Request, exc: GpuCloudError) -> Response:
    status = status_of(exc)
    headers = None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, UnavailableError):
        headers = {"Retry-After": "1"}
        log.warning("dependency unavailable: %s", exc.__cause__ or exc)
    details = exc.details if isinstance(exc, InvalidInputError) else None
    return error_response(request, status, exc.message, details=details, headers=headers)


def _framework_error(request: Request, exc: HTTPException) -> Response:
    path = request.url.path
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"No endpoint at {path}; see /docs for the API's endpoints"
    elif exc.status_code == 405:
        # Starlette names the methods of the first route on this path; all of them is right.
        allowed = ", ".join(_allowed_methods(request, path)) or headers.get("Allow", "")
        headers["Allow"] = allowed
        message = f"{request.method} is not allowed on {path}"
        message += f"; use {allowed}" if allowed else ""
    else:
        message = str(exc.detail) if exc.detail else HTTPStatus(exc.status_code).phrase
    return error_response(request, exc.status_code, message, headers=headers)


def _allowed_methods(request: Request, path: str) -> list[str]:
    methods: set[str] = set()
    for route in getattr(request.app, "routes", ()):
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return sorted(methods)


def describe_validation_errors(errors: Any) -> list[FieldProblem]:
    """Pydantic's errors as one readable sentence per field."""
    problems = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        field = ".".join(location) or "body"
        kind = error.get("type", "")
        if kind == "missing":
            message = f"{field} is required"
        elif kind == "string_type":
            message = f"{field} must be a string"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            message = "The request body must be a JSON object"
        else:
            message = f"{field}: {error.get('msg', 'is not valid')}"
        problems.append(FieldProblem(field=field, message=message))
    return problems
