"""Recording and reading audit events.

Events are written in the same transaction as the change they describe: a change is
never committed without its event, and an event never survives a rolled-back change.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from typing import NamedTuple

from sqlalchemy import insert, select

from gpucloud.audit.models import audit_events
from gpucloud.db import Statement, Unit, utcnow
from gpucloud.owners.models import owners


class Actor(NamedTuple):  # built on every request: a tuple is cheapest
    """Who is acting, as the audit log records it.

    `api_key_id` is None for the operator's CLI; `client` is the peer address of an HTTP
    request, or "cli". `owner_version` is the owner's version (gpucloud.owners.models)
    as authentication read it.
    """

    owner_id: str
    api_key_id: str | None
    request_id: str | None = None
    client: str | None = None
    owner_version: int = 0


class AuditEntry(NamedTuple):
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
    scopes: str | None


_INSERT = Statement(insert(audit_events))
_sequence = itertools.count()


def _event_id(at: dt.datetime) -> str:
    """An event id that sorts in the order events were recorded.

    6 bytes of milliseconds, 2 bytes of a per-process counter, 4 random bytes: events of
    one transaction share a timestamp (a delete and the promotion it causes), and the
    log, ordered by (at, id), must still show them in the order they happened.
    """
    millis = int(at.timestamp() * 1000)
    return (
        millis.to_bytes(6, "big").hex()
        + (next(_sequence) & 0xFFFF).to_bytes(2, "big").hex()
        + secrets.token_hex(4)
    )


async def record(
    unit: Unit,
    actor: Actor,
    action: str,
    *,
    ssh_key_id: str | None = None,
    fingerprint: str | None = None,
    name: str | None = None,
    api_key_id: str | None = None,
    scopes: str | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Append one event. `api_key_id` overrides the actor's (for API-key events, the key
    acted upon, and `scopes` are that key's)."""
    at = at or utcnow()
    await unit.run(
        _INSERT,
        {
            "id": _event_id(at),
            "at": at,
            "owner_id": actor.owner_id,
            "action": action,
            "api_key_id": api_key_id or actor.api_key_id,
            "ssh_key_id": ssh_key_id,
            "fingerprint": fingerprint,
            "name": name,
            "request_id": actor.request_id,
            "client": actor.client,
            "scopes": scopes,
        },
    )


async def query(
    unit: Unit,
    *,
    owner: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Events, oldest first, optionally for one owner (by name) and since a time."""
    statement = (
        select(
            audit_events.c.id,
            audit_events.c.at,
            owners.c.name.label("owner"),
            audit_events.c.action,
            audit_events.c.api_key_id,
            audit_events.c.ssh_key_id,
            audit_events.c.fingerprint,
            audit_events.c.name,
            audit_events.c.request_id,
            audit_events.c.client,
            audit_events.c.scopes,
        )
        .join(owners, owners.c.id == audit_events.c.owner_id)
        .order_by(audit_events.c.at, audit_events.c.id)
        .limit(limit)
    )
    if owner is not None:
        statement = statement.where(owners.c.name == owner.strip())
    if since is not None:
        statement = statement.where(audit_events.c.at >= since)
    return await unit.fetch(Statement(statement, AuditEntry))
