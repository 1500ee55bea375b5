"""What the test controls do to the database: wipe it, and make API keys for tests."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import delete

from gpucloud.api_keys import service as api_keys
from gpucloud.db import Statement, Unit
from gpucloud.errors import InvalidInputError
from gpucloud.models import metadata

# The scopes of SPEC 8. Until API keys store scopes (issue 11), a key made here has
# every permission of an ssh-keys key whatever it asks for; the names are checked now
# so that tests written today keep their meaning.
KNOWN_SCOPES = ("ssh-keys", "authorized-keys")

# Children before parents, so that no foreign key is left pointing at a deleted row. The
# schema's version (alembic_version) is not a model, and stays.
_WIPE = tuple(Statement(delete(table)) for table in reversed(metadata.sorted_tables))


async def wipe(unit: Unit) -> None:
    """Delete every row of every table: owners, API keys, SSH keys, audit, idempotency."""
    for statement in _WIPE:
        await unit.run(statement)


def checked_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes, each once, in the order given; raises InvalidInputError for an empty
    list or a scope that does not exist."""
    unknown = [scope for scope in scopes if scope not in KNOWN_SCOPES]
    if unknown or not scopes:
        raise InvalidInputError(
            f"scopes: {', '.join(map(repr, unknown)) or 'an empty list'} is not a list of "
            f"API-key scopes; give one or more of {', '.join(KNOWN_SCOPES)}"
        )
    return tuple(dict.fromkeys(scopes))


async def create_api_key(unit: Unit, *, owner: str | None) -> tuple[str, str]:
    """A new API key of `owner` (created if new; a new owner of its own when None):
    returns (secret, owner name)."""
    name = owner if owner is not None else f"owner-{secrets.token_hex(6)}"
    secret, info = await api_keys.create(unit, owner=name, client="test-controls")
    return secret, info.owner
