"""The database: engine set-up for SQLite and PostgreSQL, and the unit of work.

Both databases are driven through SQLAlchemy's asyncio layer (aiosqlite, asyncpg).
The request owns the transaction: a route opens `database.read()` or
`database.write()`, hands the connection to a service, and the context manager
commits when the block ends without error. Services never commit.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, DateTime, MetaData, event, make_url, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from gpucloud.config import Settings
from gpucloud.errors import UnavailableError

# Named constraints, so that migrations and error mapping can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; its metadata is what Alembic compares against."""

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


def utcnow() -> dt.datetime:
    """Now, in UTC, truncated to the millisecond: the precision the API shows."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id() -> str:
    """A new 24-hex-character id (MongoDB ObjectId shape).

    Four bytes of seconds since the epoch keep ids roughly time-ordered (index locality);
    eight random bytes (64 bits) make them impossible to guess.
    """
    return int(time.time()).to_bytes(4, "big").hex() + secrets.token_hex(8)


def normalize_url(url: str) -> URL:
    """The async SQLAlchemy URL for a user-given `sqlite://` or `postgresql://` URL.

    Raises ValueError for any other database.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}; use sqlite:///… or postgresql://…")


def sqlite_path(url: URL) -> Path | None:
    """The file of an SQLite URL, or None for an in-memory or non-SQLite database."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def describe(url: str) -> str:
    """Where the data lives, for the start-up line: a file path or a URL without password."""
    parsed = normalize_url(url)
    path = sqlite_path(parsed)
    if path is not None:
        return f"SQLite file {path}"
    return f"PostgreSQL {parsed.render_as_string(hide_password=True).split('://', 1)[1]}"


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for `settings.database_url`, with each database's session settings."""
    url = normalize_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, settings)
    return _postgres_engine(url, settings)


def _sqlite_engine(url: URL, settings: Settings) -> AsyncEngine:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        # aiosqlite gives every connection a thread of its own: pooling them saves a
        # thread start per request.
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writes can take the
        # write lock up front (BEGIN IMMEDIATE) instead of failing on lock upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={settings.sqlite_busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("gpucloud_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_engine(url: URL, settings: Settings) -> AsyncEngine:
    server_settings = {"application_name": "gpucloud"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "server_settings": server_settings,
            "timeout": settings.db_connect_timeout_s,
        },
    )


class Database:
    """The engine plus the unit of work that routes and CLI commands use."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a read-only transaction (a consistent snapshot)."""
        async with self._translate_outage(), self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed when the block ends cleanly.

        On SQLite the write lock is taken at BEGIN, so concurrent writers queue
        (busy_timeout) instead of failing half-way.
        """
        async with self._translate_outage(), self.engine.connect() as conn:
            await conn.execution_options(gpucloud_write=True)
            async with conn.begin():
                yield conn

    async def ping(self) -> None:
        """Raises UnavailableError unless the database can serve reads and writes.

        On SQLite a plain SELECT would succeed while another process holds the write lock
        and every write times out, so the ping takes the write lock (and writes nothing).
        """
        unit = self.write() if self.dialect == "sqlite" else self.read()
        async with unit as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _translate_outage(self) -> AsyncIterator[None]:
        try:
            yield
        except (PoolTimeoutError, OSError) as exc:
            raise UnavailableError("The database is unreachable; try again shortly") from exc
        except (OperationalError, DBAPIError) as exc:
            if is_outage(exc):
                raise UnavailableError(
                    "The database is unavailable or busy; try again shortly"
                ) from exc
            raise


def is_outage(exc: DBAPIError) -> bool:
    """True when a driver error means "cannot reach or lock the database" rather than a bug."""
    if exc.connection_invalidated:
        return True
    message = str(exc.orig).lower() if exc.orig is not None else ""
    markers = (
        "database is locked",
        "unable to open database",
        "disk i/o error",
        "connection refused",
        "connection was closed",
        "connection is closed",
        "cannot connect",
        "the database system is",
        "terminating connection",
        "statement timeout",
        "canceling statement",
        "connection does not exist",
        "server closed the connection",
        "too many connections",
    )
    return any(marker in message for marker in markers) or isinstance(exc.orig, OSError)
