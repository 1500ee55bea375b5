"""Reading a JSON request body, after authentication and within the size limit.

Routes read their body here instead of letting the framework do it, because the
framework would read and validate the body before the API key is checked (SPEC 2:
authentication first), and would read a body of any size.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from gpucloud.errors import FieldProblem, InvalidInputError
from gpucloud.http.context import header, services
from gpucloud.http.errors import RequestProblem, describe_validation_errors

Model = TypeVar("Model", bound=BaseModel)


async def read_json(request: Request, *, max_bytes: int, timeout_s: float) -> Any:
    """The parsed JSON body.

    Raises RequestProblem 413 (too large, judged by Content-Length and while reading),
    408 (not received within `timeout_s`), 415 (not application/json), or
    InvalidInputError (empty or not JSON).
    """
    too_large = RequestProblem(
        413, f"The request body is larger than {max_bytes // 1024} KiB; send one key at a time"
    )
    declared = header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    # The size is judged before the media type (SPEC 4's order), also for a body sent
    # without Content-Length: reading at most max_bytes of it first is cheap.
    chunks = []
    size = 0
    try:
        # A client that trickles its body must not hold a connection open forever.
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise RequestProblem(
            408, f"The request body did not arrive within {timeout_s:g} s; send it in one go"
        ) from None
    except ClientDisconnect:
        # Nobody is left to answer, but this is the client's doing, not a server error.
        raise RequestProblem(
            400, "The connection closed before the whole request body arrived"
        ) from None
    media_type = (header(request, b"content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise RequestProblem(
            415, "Send the request body as JSON, with the header Content-Type: application/json"
        )
    body = b"".join(chunks)
    if not body.strip():
        raise _not_json("The request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _not_json("The request body is not valid JSON; send a JSON object") from None


async def read_model(request: Request, model: type[Model]) -> Model:
    """The body validated as `model`, within the app's size and time limits; field
    problems become a 400 with details."""
    settings = services(request).settings
    data = await read_json(
        request, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    if not isinstance(data, dict):
        raise _not_json("The request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation_errors(exc.errors())
        raise InvalidInputError("; ".join(p.message for p in problems), details=problems) from None


def _not_json(message: str) -> InvalidInputError:
    return InvalidInputError(message, details=[FieldProblem("body", message)])
