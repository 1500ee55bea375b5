"""The ssh_keys table: one public key an owner has registered.

Every index leads with owner_id: each lookup the API does is within one owner, and a
table sharded by owner (Citus) needs its unique indexes to include the shard key. The
primary key is (owner_id, id) for the same reason.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from gpucloud.db import UTCDateTime, metadata

ssh_keys = Table(
    "ssh_keys",
    metadata,
    Column("owner_id", String(24), ForeignKey("owners.id"), primary_key=True),
    Column("id", String(24), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("key_type", String(64), nullable=False),
    Column("key_bits", Integer, nullable=False),
    Column("fingerprint_sha256", String(64), nullable=False),
    Column("fingerprint_md5", String(64), nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # After it, the key is listed but never served to an SSH server (SPEC 9).
    Column("expires_at", UTCDateTime()),
    # The last minute the key was handed to an SSH server or certified.
    Column("last_used_at", UTCDateTime()),
    # One registration of a public key, and of a name, per owner. No other index: each
    # costs every create a page write, and the reads by listing order or by MD5
    # fingerprint read one owner's keys, which the per-owner limit bounds (D58).
    UniqueConstraint("owner_id", "fingerprint_sha256"),
    UniqueConstraint("owner_id", "name"),
    # The invariant's "at most one default per owner", enforced by the database.
    Index(
        "uq_ssh_keys_one_default_per_owner",
        "owner_id",
        unique=True,
        sqlite_where=text("is_default"),
        postgresql_where=text("is_default"),
    ),
)
