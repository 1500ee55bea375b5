"""The audit_events table: one change, an SSH key created, renamed, made default or
deleted; an API key created, revoked or rotated. Never holds a secret.

No foreign key to ssh_keys: events outlive the keys. One index besides the primary key,
on the time: every write of the API inserts an event, and an index by owner would cost
each of them a page of its own in the commit (migration 0007, docs/decisions.md D59).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from gpucloud.db import UTCDateTime, metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("owner_id", String(24), nullable=False),
    Column("action", String(32), nullable=False),
    Column("api_key_id", String(24)),
    Column("ssh_key_id", String(24)),
    Column("fingerprint", String(64)),
    Column("name", String(128)),
    Column("request_id", String(64)),
    Column("client", String(64)),
    # Of an api_key.* event: the scopes of the API key it is about.
    Column("scopes", String(128)),
    Index(None, "at"),
)
