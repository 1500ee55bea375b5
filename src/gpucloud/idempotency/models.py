"""The idempotency_keys table: the first answer to each (owner, key), kept for 24 hours.

A row holds a create request's key, the digest of its body, and the answer it got.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, LargeBinary, String, Table

from gpucloud.db import UTCDateTime, metadata

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner_id", String(24), ForeignKey("owners.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_digest", LargeBinary(32), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    Column("location", String(255)),
    Column("created_at", UTCDateTime(), nullable=False),
)
