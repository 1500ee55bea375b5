"""The owners table: an account. Its row is also the lock that serialises writes to its
SSH keys.

`version` and `key_count` are kept by the database itself: triggers on `ssh_keys`
(migrations 0003 and 0005) add one to `version` on every insert, update or delete of one of the
owner's keys, and keep `key_count` equal to the number of its keys, in the same
transaction as the change. No code path can forget them, and a version that has not
moved means the owner's keys have not changed (gpucloud.http.cache relies on it).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, text

from gpucloud.db import UTCDateTime, metadata

owners = Table(
    "owners",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    Column("key_count", Integer, nullable=False, server_default=text("0")),
)
