"""The api_keys table."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from gpucloud.db import Base, UTCDateTime


class APIKey(Base):
    """One API key. The secret itself is never stored, only its SHA-256 digest."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(24), ForeignKey("owners.id"))
    secret_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Space-separated, sorted (SPEC 8). Keys made before scopes existed have ssh-keys.
    scopes: Mapped[str] = mapped_column(String(128), server_default=text("'ssh-keys'"))

    __table_args__ = (Index(None, "owner_id"),)
