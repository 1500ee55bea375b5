"""Authentication: who is calling, checked before anything else in the request.

Order: the caller's address may be throttled for failed authentications (429); then the
API key is checked (403/404), a failure counting against the address; then the key's own
rate limit (429); then its scope (403 naming the scope it lacks, SPEC 8), all before the
handler reads the body. The router runs this for every operation that has a scope, before
its handler (gpucloud.http.routing).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from gpucloud.api_keys import service as api_keys
from gpucloud.audit.service import Actor
from gpucloud.db import utcnow
from gpucloud.errors import AuthenticationError
from gpucloud.http.context import header, services

API_KEY_HEADER = "x-api-key"
_API_KEY_HEADER_BYTES = API_KEY_HEADER.encode()
# The header as the source document describes it, for the OpenAPI document.
API_KEY_PARAMETER: dict[str, Any] = {
    "name": API_KEY_HEADER,
    "in": "header",
    "description": "The API Key secret should be sent through this header to authenticate the request.",
    "required": True,
    "schema": {"type": "string"},
}


async def authenticate(request: Request, scope: str) -> Actor:
    """The authenticated caller of `request`, from its `x-api-key` header, whose key
    allows `scope`.

    Raises AuthenticationError, UnknownAPIKeyError, RateLimitedError or ForbiddenError.
    """
    context = services(request)
    limiter = context.limiter
    client = (request.scope.get("client") or ("-",))[0]
    await limiter.check_address(client)
    now = utcnow()
    try:
        principal, stale = await api_keys.authenticate(
            context.database, header(request, _API_KEY_HEADER_BYTES), now=now
        )
    except AuthenticationError:
        await limiter.record_auth_failure(client)
        raise
    state = request.scope["state"]
    state["api_key_id"] = principal.api_key_id
    await limiter.check_api_key(principal.api_key_id)
    if stale:  # a key refused for its scope was still used
        async with context.database.write() as unit:
            await api_keys.record_use(unit, principal.api_key_id, now=now)
    api_keys.check_scope(principal, scope)
    # Positional: a named tuple built by keyword costs twice as much, on every request.
    return Actor(
        principal.owner_id,
        principal.api_key_id,
        state.get("request_id"),
        client,
        principal.owner_version,
    )
