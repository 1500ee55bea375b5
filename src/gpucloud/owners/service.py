"""Owner rules: find or create by name, and the per-owner write lock."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select

from gpucloud.db import Statement, Unit, new_id, utcnow
from gpucloud.errors import InvalidInputError
from gpucloud.owners.models import owners

_ID_OF_NAME = Statement(select(owners.c.id).where(owners.c.name == bindparam("name")))
_INSERT = Statement(insert(owners))
# FOR UPDATE on PostgreSQL; SQLite has no row locks and the clause is left out.
_LOCK = Statement(
    select(owners.c.key_count).where(owners.c.id == bindparam("owner_id")).with_for_update()
)


async def get_or_create(unit: Unit, name: str) -> str:
    """The id of the owner called `name`, created if it does not exist yet."""
    name = name.strip()
    if not name or len(name) > 128 or not name.isprintable():
        raise InvalidInputError("The owner name must be 1 to 128 printable characters")
    found = await unit.fetch_one(_ID_OF_NAME, {"name": name})
    if found is not None:
        return str(found.id)
    owner_id = new_id()
    await unit.run(_INSERT, {"id": owner_id, "name": name, "created_at": utcnow()})
    return owner_id


async def lock(unit: Unit, owner_id: str) -> None:
    """Serialise this transaction with every other write to the owner's SSH keys.

    On PostgreSQL this takes a row lock on the owner (SELECT … FOR UPDATE) that other
    writers wait for until commit. On SQLite there is nothing to do: writes already run
    one at a time, the write transaction having taken the database's write lock at
    BEGIN IMMEDIATE (`Unit.serialised`).
    """
    if not unit.serialised:
        await unit.fetch(_LOCK, {"owner_id": owner_id})


async def lock_and_count(unit: Unit, owner_id: str) -> int:
    """`lock`, and how many keys the owner has (0 for an owner not stored), in one read."""
    row = await unit.fetch_one(_LOCK, {"owner_id": owner_id})
    return int(row.key_count) if row is not None else 0
