"""The audit_events table. No foreign key to ssh_keys: events outlive the keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gpucloud.db import Base, UTCDateTime


class AuditEvent(Base):
    """One change: an SSH key created, renamed, made default or deleted; an API key
    created, revoked or rotated. Never holds a secret."""

    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    owner_id: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(32))
    api_key_id: Mapped[str | None] = mapped_column(String(24))
    ssh_key_id: Mapped[str | None] = mapped_column(String(24))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[str | None] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))
    # Of an api_key.* event: the scopes of the API key it is about.
    scopes: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index(None, "owner_id", "at"), Index(None, "at"))
