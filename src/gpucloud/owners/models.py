"""The owners table."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from gpucloud.db import Base, UTCDateTime


class Owner(Base):
    """An account. Its row is also the lock that serialises writes to its SSH keys.

    `version` and `key_count` are kept by the database itself: triggers on `ssh_keys`
    (migration 0003) add one to `version` on every insert, update or delete of one of the
    owner's keys, and keep `key_count` equal to the number of its keys, in the same
    transaction as the change. No code path can forget them, and a version that has not
    moved means the owner's keys have not changed (gpucloud.http.cache relies on it).
    """

    __tablename__ = "owners"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    key_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
