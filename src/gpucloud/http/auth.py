"""Authentication: who is calling, checked before anything else in the request.

Order: the caller's address may be throttled for failed authentications (429); then the
API key is checked (403/404), a failure counting against the address; then the key's own
rate limit (429).
"""

from __future__ import annotations

from fastapi import Request

from gpucloud.api_keys import service as api_keys
from gpucloud.audit.service import Actor
from gpucloud.db import Database, utcnow
from gpucloud.errors import AuthenticationError
from gpucloud.ratelimit import RateLimiter

API_KEY_HEADER = "x-api-key"
API_KEY_DESCRIPTION = (
    "The API Key secret should be sent through this header to authenticate the request."
)


async def authenticate_request(request: Request) -> Actor:
    """The authenticated caller of `request`, from its `x-api-key` header.

    Raises AuthenticationError, UnknownAPIKeyError or RateLimitedError.
    """
    database: Database = request.app.state.database
    limiter: RateLimiter = request.app.state.rate_limiter
    client = request.client.host if request.client else "-"
    await limiter.check_address(client)
    now = utcnow()
    try:
        async with database.read() as conn:
            principal, stale = await api_keys.authenticate(
                conn, request.headers.get(API_KEY_HEADER), now=now
            )
    except AuthenticationError:
        await limiter.record_auth_failure(client)
        raise
    request.state.api_key_id = principal.api_key_id
    await limiter.check_api_key(principal.api_key_id)
    if stale:
        async with database.write() as conn:
            await api_keys.record_use(conn, principal.api_key_id, now=now)
    return Actor(
        owner_id=principal.owner_id,
        api_key_id=principal.api_key_id,
        request_id=request.state.request_id,
        client=client,
    )
