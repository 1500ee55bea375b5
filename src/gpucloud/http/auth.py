"""The authentication dependency: who is calling, checked before anything else."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from gpucloud.api_keys import service as api_keys
from gpucloud.api_keys.service import Principal
from gpucloud.db import Database, utcnow

API_KEY_HEADER = "x-api-key"
API_KEY_DESCRIPTION = (
    "The API Key secret should be sent through this header to authenticate the request."
)


async def require_principal(
    request: Request,
    # Declared optional so that a missing header reaches the service (403 "API key
    # invalid") rather than the framework's validation; the OpenAPI document marks it
    # required, as the source document does.
    x_api_key: Annotated[
        str | None, Header(alias=API_KEY_HEADER, description=API_KEY_DESCRIPTION)
    ] = None,
) -> Principal:
    """The caller's principal; raises AuthenticationError / UnknownAPIKeyError."""
    database: Database = request.app.state.database
    now = utcnow()
    async with database.read() as conn:
        principal, stale = await api_keys.authenticate(conn, x_api_key, now=now)
    if stale:
        async with database.write() as conn:
            await api_keys.record_use(conn, principal.api_key_id, now=now)
    request.state.api_key_id = principal.api_key_id
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
