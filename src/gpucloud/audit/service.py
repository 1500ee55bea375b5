"""Recording and reading audit events.

Events are written in the same transaction as the change they describe: a change is
never committed without its event, and an event never survives a rolled-back change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import insert, select

from gpucloud.audit.models import AuditEvent
from gpucloud.db import Connection, Prepared, new_id, utcnow
from gpucloud.owners.models import Owner


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, as the audit log records it.

    `api_key_id` is None for the operator's CLI; `client` is the peer address of an HTTP
    request, or "cli".
    """

    owner_id: str
    api_key_id: str | None
    request_id: str | None = None
    client: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An event as `gpucloud audit` shows it."""

    id: str
    at: dt.datetime
    owner: str
    action: str
    api_key_id: str | None
    ssh_key_id: str | None
    fingerprint: str | None
    name: str | None
    request_id: str | None
    client: str | None


_INSERT = Prepared(insert(AuditEvent))


async def record(
    conn: Connection,
    actor: Actor,
    action: str,
    *,
    ssh_key_id: str | None = None,
    fingerprint: str | None = None,
    name: str | None = None,
    api_key_id: str | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Append one event. `api_key_id` overrides the actor's (for API-key events, the key
    acted upon)."""
    await conn.run(
        _INSERT,
        {
            "id": new_id(),
            "at": at or utcnow(),
            "owner_id": actor.owner_id,
            "action": action,
            "api_key_id": api_key_id or actor.api_key_id,
            "ssh_key_id": ssh_key_id,
            "fingerprint": fingerprint,
            "name": name,
            "request_id": actor.request_id,
            "client": actor.client,
        },
    )


async def query(
    conn: Connection,
    *,
    owner: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Events, oldest first, optionally for one owner (by name) and since a time."""
    statement = (
        select(
            AuditEvent.id,
            AuditEvent.at,
            Owner.name.label("owner"),
            AuditEvent.action,
            AuditEvent.api_key_id,
            AuditEvent.ssh_key_id,
            AuditEvent.fingerprint,
            AuditEvent.name,
            AuditEvent.request_id,
            AuditEvent.client,
        )
        .join(Owner, Owner.id == AuditEvent.owner_id)
        .order_by(AuditEvent.at, AuditEvent.id)
        .limit(limit)
    )
    if owner is not None:
        statement = statement.where(Owner.name == owner.strip())
    if since is not None:
        statement = statement.where(AuditEvent.at >= since)
    return [AuditEntry(**row._mapping) for row in await conn.execute(statement)]
