"""API keys made straight in a test database, as `gpucloud api-keys …` would make them.

For tests that drive a real server process: the CLI costs a second of process start per
key, the service a few milliseconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gpucloud.api_keys import service as api_keys
from gpucloud.config import Settings
from gpucloud.db import Database, create_database


@asynccontextmanager
async def open_database(database_url: str) -> AsyncIterator[Database]:
    """The database of `database_url`, closed on exit."""
    database = create_database(Settings(database_url=database_url))
    try:
        yield database
    finally:
        await database.dispose()


def create_api_key(
    database_url: str,
    owner: str,
    expires_in: dt.timedelta | None = None,
    scopes: tuple[str, ...] = ("ssh-keys",),
) -> str:
    """A new API key secret of `owner` (created if new), with these scopes."""

    async def create() -> str:
        async with open_database(database_url) as database, database.write() as conn:
            secret, _ = await api_keys.create(
                conn, owner=owner, expires_in=expires_in, scopes=scopes
            )
        return secret

    return asyncio.run(create())


def revoke_api_key(database_url: str, secret: str) -> None:
    """Revoke the API key, as `gpucloud api-keys revoke` does."""

    async def revoke() -> None:
        async with open_database(database_url) as database, database.write() as conn:
            await api_keys.revoke(conn, secret)

    asyncio.run(revoke())
