"""The ssh_keys table.

Every index leads with owner_id: each lookup the API does is within one owner, and a
table sharded by owner (Citus) needs its unique indexes to include the shard key. The
primary key is (owner_id, id) for the same reason.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gpucloud.db import Base, UTCDateTime


class SSHKey(Base):
    """One public key an owner has registered."""

    __tablename__ = "ssh_keys"

    owner_id: Mapped[str] = mapped_column(String(24), ForeignKey("owners.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[str] = mapped_column(Text)
    key_type: Mapped[str] = mapped_column(String(64))
    key_bits: Mapped[int] = mapped_column(Integer)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    fingerprint_md5: Mapped[str] = mapped_column(String(64))
    is_default: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # After it, the key is listed but never served to an SSH server (SPEC 9).
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The last minute the key was handed to an SSH server or certified.
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # The listing order: oldest first, ties by id.
        Index(None, "owner_id", "created_at", "id"),
        # One registration of a public key, and of a name, per owner.
        UniqueConstraint("owner_id", "fingerprint_sha256"),
        UniqueConstraint("owner_id", "name"),
        Index(None, "owner_id", "fingerprint_md5"),
        # The invariant's "at most one default per owner", enforced by the database.
        Index(
            "uq_ssh_keys_one_default_per_owner",
            "owner_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )
