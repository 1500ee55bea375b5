"""The one error shape (SPEC 3), and the one place that maps errors to status codes.

Every error leaves the server as
`{"statusCode", "timestamp", "path", "message", "error"[, "details"]}`, whether a
service raised it, the framework did (unknown route, wrong method, validation), or a
bug did (500, with no internals).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from gpucloud.errors import (
    AuthenticationError,
    ConflictError,
    FieldProblem,
    GpuCloudError,
    InvalidInputError,
    NotFoundError,
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
    (InvalidInputError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (RateLimitedError, 429),
    (UnavailableError, 503),
)


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


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    details: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response in the SPEC's error shape."""
    body: dict[str, Any] = {
        "statusCode": status,
        "timestamp": iso_timestamp(),
        "path": request.url.path,
        "message": message,
        "error": HTTPStatus(status).phrase,
    }
    if details:
        body["details"] = [{"field": d.field, "message": d.message} for d in details]
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def response_for(request: Request, exc: GpuCloudError | RequestProblem) -> Response:
    """The error response for a domain error or a request problem."""
    if isinstance(exc, RequestProblem):
        return error_response(request, exc.status, exc.message)
    status = status_of(exc)
    headers = None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, UnavailableError):
        headers = {"Retry-After": "1"}
        log.warning("dependency unavailable: %s", exc.__cause__ or exc)
    details = exc.details if isinstance(exc, InvalidInputError) else None
    return error_response(request, status, exc.message, details=details, headers=headers)


async def _known_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GpuCloudError | RequestProblem)
    return response_for(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = describe_validation_errors(exc.errors())
    message = "; ".join(p.message for p in problems) or "The request is not valid"
    return error_response(request, 400, message, details=problems)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"No endpoint at {request.url.path}; see /docs for the API's endpoints"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}"
        message += f"; use {allowed}" if allowed else ""
    else:
        message = str(exc.detail) if exc.detail else HTTPStatus(exc.status_code).phrase
    return error_response(request, exc.status_code, message, headers=exc.headers)


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


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the SPEC's shape."""
    app.add_exception_handler(GpuCloudError, _known_error)
    app.add_exception_handler(RequestProblem, _known_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    # Anything else is a bug: RequestContextMiddleware logs it and answers a bare 500.
