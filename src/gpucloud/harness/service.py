"""What the test controls do to the database: wipe it, and make API keys for tests."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import delete

from gpucloud.api_keys import service as api_keys
from gpucloud.db import Statement, Unit
from gpucloud.models import metadata

# Children before parents, so that no foreign key is left pointing at a deleted row. The
# schema's version (alembic_version) is not a model, and stays.
_WIPE = tuple(Statement(delete(table)) for table in reversed(metadata.sorted_tables))


async def wipe(unit: Unit) -> None:
    """Delete every row of every table: owners, API keys, SSH keys, audit, idempotency."""
    for statement in _WIPE:
        await unit.run(statement)


async def create_api_key(
    unit: Unit, *, owner: str | None, scopes: Sequence[str]
) -> tuple[str, str, tuple[str, ...]]:
    """A new API key of `owner` (created if new; a new owner of its own when None) with
    these scopes: returns (secret, owner name, scopes). Raises InvalidInputError for an
    empty list or an unknown scope."""
    name = owner if owner is not None else f"owner-{secrets.token_hex(6)}"
    secret, info = await api_keys.create(unit, owner=name, scopes=scopes, client="test-controls")
    return secret, info.owner, tuple(info.scopes.split())
