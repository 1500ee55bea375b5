"""The api_keys table: one API key. The secret itself is never stored, only its SHA-256
digest."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, LargeBinary, String, Table, text

from gpucloud.db import UTCDateTime, metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("owner_id", String(24), ForeignKey("owners.id"), nullable=False),
    Column("secret_digest", LargeBinary(32), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
    # Space-separated, sorted (SPEC 8). Keys made before scopes existed have ssh-keys.
    Column("scopes", String(128), nullable=False, server_default=text("'ssh-keys'")),
    Index(None, "owner_id"),
)
