"""Owner rules: find or create by name, and the per-owner write lock."""

from __future__ import annotations

from sqlalchemy import insert, select

from gpucloud.db import Connection, new_id, utcnow
from gpucloud.errors import InvalidInputError
from gpucloud.owners.models import Owner


async def get_or_create(conn: Connection, name: str) -> str:
    """The id of the owner called `name`, created if it does not exist yet."""
    name = name.strip()
    if not name or len(name) > 128 or not name.isprintable():
        raise InvalidInputError("The owner name must be 1 to 128 printable characters")
    found: str | None = await conn.scalar(select(Owner.id).where(Owner.name == name))
    if found is not None:
        return found
    owner_id = new_id()
    await conn.execute(insert(Owner).values(id=owner_id, name=name, created_at=utcnow()))
    return owner_id


async def lock(conn: Connection, owner_id: str) -> None:
    """Serialise this transaction with every other write to the owner's SSH keys.

    On PostgreSQL this takes a row lock on the owner (SELECT … FOR UPDATE) that other
    writers wait for until commit. On SQLite, writes already run one at a time: the
    write transaction took the database's write lock at BEGIN IMMEDIATE.
    """
    if conn.dialect.name == "sqlite":
        return
    await conn.execute(select(Owner.id).where(Owner.id == owner_id).with_for_update())
