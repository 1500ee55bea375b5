"""What every table shares: the metadata, UTC timestamps, ids."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

from sqlalchemy import DateTime, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Named constraints, so that migrations and error mapping can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Every table is a Core `Table` on this metadata; it is what Alembic compares against.
# No ORM: declaring them with it cost the serving process 6 MiB (docs/decisions.md).
metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no time zones: values are stored naive, in UTC, and get their zone back
    on the way out. PostgreSQL stores `timestamptz`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # What process_bind_param and then SQLite's DATETIME would write, in one step:
        # "2026-11-27 16:16:26.339000" (naive UTC, always with microseconds).
        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
            if value.tzinfo is not dt.UTC:
                value = value.astimezone(dt.UTC)
            return value.isoformat(" ", "microseconds")[:26]

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite hands back the stored text, naive UTC ("2026-11-27 16:16:26.339000"):
        # read as UTC at once, it costs a fifth of parsing it naive and then giving it its
        # zone (datetime.replace), which every authentication would pay.
        def process(value: Any) -> dt.datetime | None:
            if value is None:
                return None
            if isinstance(value, str):
                return dt.datetime.fromisoformat(value + "+00:00")
            return self.process_result_value(value, dialect)

        return process


def utcnow() -> dt.datetime:
    """Now, in UTC, truncated to the millisecond: the precision the API shows."""
    # From whole milliseconds (fromtimestamp rounds to the microsecond, so the float's
    # error cannot show): a third of the cost of datetime.now().replace(...), and
    # authentication asks for the time on every request.
    return dt.datetime.fromtimestamp(int(time.time() * 1000) / 1000, dt.UTC)


def new_id() -> str:
    """A new 24-hex-character id (MongoDB ObjectId shape).

    Four bytes of seconds since the epoch keep ids roughly time-ordered (index locality);
    eight random bytes (64 bits) make them impossible to guess.
    """
    return int(time.time()).to_bytes(4, "big").hex() + secrets.token_hex(8)
