"""The idempotency_keys table: the first answer to each (owner, key), kept for 24 hours."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from gpucloud.db import Base, UTCDateTime


class IdempotencyKey(Base):
    """A create request's key, the digest of its body, and the answer it got."""

    __tablename__ = "idempotency_keys"

    owner_id: Mapped[str] = mapped_column(String(24), ForeignKey("owners.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    location: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
