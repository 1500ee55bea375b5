"""Every error the client raises on purpose, and the one place that maps answers to them.

    GpuCloudError                   anything below; `message` is one readable sentence
     ├── TransportError             no answer: connection refused, DNS failure, timeout
     ├── AuthenticationError        no API key configured, 403 API key invalid,
     │                              or 404 API key not found
     ├── InvalidRequestError        400, 413, 415: the request was refused as it is;
     │                              also a private key refused before it was sent
     ├── NotFoundError              404: no such SSH key for this API key
     ├── ConflictError              409: the same key or name is already registered
     ├── RateLimitedError           429: `retry_after` seconds, when the server said
     ├── ServerError                5xx: the server failed; retrying later may work
     └── UnexpectedResponseError    an answer that is not this API's (wrong URL, proxy)

Errors from an HTTP answer carry `status_code`, `path`, `details` (the 400's list of
`{field, message}`) and `request_id` (the server's `x-request-id`, for its logs). httpx's
own exceptions never reach the caller: they are translated at the boundary, here.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import httpx

# The message SPEC 2 gives a well-formed API key that matches no stored key: a 404 that
# means "your credentials are wrong", not "no such SSH key".
UNKNOWN_API_KEY_MESSAGE = "API key not found"


class GpuCloudError(Exception):
    """Base class of every error the client raises on purpose.

    `status_code` is the HTTP status of the answer, or None when there was none (a
    transport failure, or a request refused before it was sent).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        path: str | None = None,
        details: Sequence[Mapping[str, str]] = (),
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.path = path
        self.details: tuple[Mapping[str, str], ...] = tuple(details)
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"


class TransportError(GpuCloudError):
    """The server could not be reached, or did not answer in time."""


class AuthenticationError(GpuCloudError):
    """No API key was configured, or the server refused it (403, or 404 API key not found)."""


class InvalidRequestError(GpuCloudError):
    """The request was refused as it is (400, 413, 415); `details` names the fields."""


class NotFoundError(GpuCloudError):
    """No such SSH key for this API key (404)."""


class ConflictError(GpuCloudError):
    """The same public key or the same name is already registered (409)."""


class RateLimitedError(GpuCloudError):
    """Too many requests (429); `retry_after` is the wait in seconds, None if not said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(GpuCloudError):
    """The server failed (5xx); retrying later may work."""


class UnexpectedResponseError(GpuCloudError):
    """An answer this API never gives: most likely the URL points at something else."""


_BY_STATUS: Mapping[int, type[GpuCloudError]] = {
    400: InvalidRequestError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    429: RateLimitedError,
}


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return max(0.0, seconds)


def error_from_response(response: httpx.Response) -> GpuCloudError:
    """The typed error for an answer that is not the success the call expected."""
    status = response.status_code
    body = _error_body(response)
    request_id = response.headers.get("x-request-id")
    if body is None:
        # Not the API's error shape: a proxy's page, another service, a redirect.
        kind: type[GpuCloudError] = ServerError if status >= 500 else UnexpectedResponseError
        return kind(_describe_foreign(response), status_code=status, request_id=request_id)
    message = body["message"]
    common: dict[str, Any] = {
        "status_code": status,
        "path": body.get("path") if isinstance(body.get("path"), str) else None,
        "details": _details(body.get("details")),
        "request_id": request_id,
    }
    if status == 404 and message == UNKNOWN_API_KEY_MESSAGE:
        return AuthenticationError(message, **common)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimitedError(message, retry_after=retry_after, **common)
    if status >= 500:
        return ServerError(message, **common)
    return _BY_STATUS.get(status, UnexpectedResponseError)(message, **common)


def unexpected(response: httpx.Response, what: str) -> UnexpectedResponseError:
    """The error for a success status whose body is not what the call expects."""
    return UnexpectedResponseError(
        f"The answer of {response.request.url} is not {what}; "
        "check that the API URL points at a gpucloud SSH-keys API",
        status_code=response.status_code,
        request_id=response.headers.get("x-request-id"),
    )


def _error_body(response: httpx.Response) -> dict[str, Any] | None:
    """The error shape of SPEC 3, or None when the body is something else."""
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    message = body["message"].strip()
    if not message:
        return None
    return {**body, "message": message}


def _details(raw: object) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        return []
    return [
        {"field": str(item.get("field", "")), "message": str(item.get("message", ""))}
        for item in raw
        if isinstance(item, dict)
    ]


def _describe_foreign(response: httpx.Response) -> str:
    status = response.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unknown status"
    url = response.request.url
    if 300 <= status < 400 and "location" in response.headers:
        return (
            f"{url} answered {status} {phrase}, redirecting to {response.headers['location']}; "
            "use that address as the API URL"
        )
    if status >= 500:
        return f"{url} answered {status} {phrase}; the service may be down, try again later"
    return (
        f"{url} answered {status} {phrase} without the API's error body; "
        "check that the API URL points at a gpucloud SSH-keys API"
    )
