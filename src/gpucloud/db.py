"""The database: SQLite or PostgreSQL, and the unit of work.

Services write SQLAlchemy Core statements against a `Connection`. On PostgreSQL that is
SQLAlchemy's asyncio connection over asyncpg; on SQLite, a synchronous connection run
inline in the event loop (see `InlineSQLiteConnection`). The request owns the
transaction: a route opens `database.read()` or `database.write()`, hands the
connection to a service, and the context manager commits when the block ends without
error. Services never commit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import URL, Boolean, DateTime, MetaData, Select, event, make_url, text
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import Dialect, Result, ScalarResult
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.base import Executable
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


class Connection(Protocol):
    """What services need of a database connection: SQLAlchemy Core statements, awaited.

    `AsyncConnection` (PostgreSQL) is one; `InlineSQLiteConnection` (SQLite) is another.
    """

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Result[Any]: ...

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any: ...

    async def scalars(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> ScalarResult[Any]: ...

    async def fetch(
        self, query: FastSelect, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]: ...


class FastSelect:
    """A SELECT for the hottest reads, compiled once and run straight on the driver.

    SQLAlchemy's per-execution machinery (parameter processing, result metadata, row
    objects) costs several times what SQLite itself takes to answer an indexed query
    (docs/decisions.md D20). The statement is still written once, with SQLAlchemy;
    on SQLite it runs as the compiled SQL text on the sqlite3 connection and each column
    is converted as its type would; on PostgreSQL it runs through SQLAlchemy as usual.
    Parameters must need no conversion (strings, bytes, integers).
    """

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._sqlite: tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]] | None
        self._sqlite = None

    def for_sqlite(
        self, dialect: Dialect
    ) -> tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]:
        """(SQL text, parameter names in order, a converter or None per column)."""
        if self._sqlite is None:
            compiled = self.statement.compile(dialect=dialect)
            names = tuple(compiled.positiontup or ())
            converters = tuple(
                _SQLITE_CONVERTERS.get(type(column.type))
                for column in self.statement.selected_columns
            )
            self._sqlite = (compiled.string, names, converters)
        return self._sqlite


def _sqlite_datetime(value: str | None) -> dt.datetime | None:
    return None if value is None else _parse_sqlite_datetime(value)


@lru_cache(maxsize=4096)
def _parse_sqlite_datetime(value: str) -> dt.datetime:
    # Stored by UTCDateTime as naive UTC text, e.g. "2026-11-27 16:16:26.339000". The same
    # rows are read over and over; the cache makes parsing ten times cheaper (bounded).
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def _sqlite_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


_SQLITE_CONVERTERS: dict[type[Any], Callable[[Any], Any]] = {
    UTCDateTime: _sqlite_datetime,
    Boolean: _sqlite_bool,
}


class InlineSQLiteConnection:
    """An SQLite connection that runs statements in the event loop's own thread.

    Reading an indexed row from SQLite takes microseconds, less than handing the work to a
    thread and back (what aiosqlite does, twice per statement); see docs/decisions.md D20.
    Nothing here waits on a lock: writers take the write lock in `SQLiteDatabase.write`,
    asynchronously, before any statement runs.
    """

    def __init__(self, connection: SyncConnection) -> None:
        self._connection = connection

    @property
    def dialect(self) -> Dialect:
        return self._connection.dialect

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        return self._connection.execute(statement, parameters)

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        return self._connection.scalar(statement, parameters)

    async def scalars(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> ScalarResult[Any]:
        return self._connection.scalars(statement, parameters)

    async def fetch(
        self, query: FastSelect, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        sql, names, converters = query.for_sqlite(self._connection.dialect)
        cursor = self._connection.connection.driver_connection.execute(  # type: ignore[union-attr]
            sql, [parameters[name] for name in names]
        )
        rows = cursor.fetchall()
        if not any(converters):
            return rows  # type: ignore[no-any-return]
        return [
            tuple(
                value if convert is None else convert(value)
                for value, convert in zip(row, converters, strict=True)
            )
            for row in rows
        ]


class PostgresConnection:
    """SQLAlchemy's asyncio connection, with `fetch` for FastSelect queries."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    @property
    def dialect(self) -> Dialect:
        return self._connection.dialect

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        return await self._connection.execute(statement, parameters)

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        return await self._connection.scalar(statement, parameters)

    async def scalars(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> ScalarResult[Any]:
        return await self._connection.scalars(statement, parameters)

    async def fetch(
        self, query: FastSelect, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        result = await self._connection.execute(query.statement, parameters)
        return [tuple(row) for row in result]


class Database:
    """The unit of work that routes and CLI commands use, for one database."""

    dialect: str

    def read(self) -> AbstractAsyncContextManager[Connection]:
        """A connection in a read-only transaction (a consistent snapshot)."""
        raise NotImplementedError

    def write(self) -> AbstractAsyncContextManager[Connection]:
        """A connection in a write transaction, committed when the block ends cleanly."""
        raise NotImplementedError

    async def ping(self) -> None:
        """Raises UnavailableError unless the database can serve reads and writes."""
        raise NotImplementedError

    async def dispose(self) -> None:
        """Close every pooled connection."""
        raise NotImplementedError


def create_database(settings: Settings) -> Database:
    """The database of `settings.database_url`: SQLite or PostgreSQL."""
    url = normalize_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return SQLiteDatabase(url, settings)
    return PostgresDatabase(url, settings)


class SQLiteDatabase(Database):
    """SQLite in WAL mode, its statements run inline in the event loop.

    Each process keeps two connections open: one for reads, one for writes. Statements
    run to completion without yielding to the event loop, so requests cannot interleave
    on a connection, and no pool is needed (checking a connection out of one costs more
    than the query). Reads run statement by statement, each on its own snapshot (WAL
    readers never wait). Writers queue on an asyncio lock inside the process, then take the
    file's write lock with BEGIN IMMEDIATE, retried asynchronously while another process
    holds it (for up to `sqlite_busy_timeout_ms`): waiting never blocks the event loop,
    and a transaction never fails half-way on a lock upgrade.
    """

    dialect = "sqlite"

    def __init__(self, url: URL, settings: Settings) -> None:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout_s = settings.sqlite_busy_timeout_ms / 1000
        self.engine = sa_create_engine(
            url.set(drivername="sqlite+pysqlite"),
            poolclass=NullPool,
            # Used from the event loop's thread only; the flag lets a connection move to
            # whichever thread runs that loop (tests start many loops).
            connect_args={"check_same_thread": False, "timeout": 0},
        )
        synchronous = settings.sqlite_synchronous

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # BEGIN is issued by hand (below), so the driver must not issue its own.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            # Lock waits happen in write(), asynchronously; SQLite itself never sleeps.
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(connection: SyncConnection) -> None:
            # Only the writer begins a transaction; a reader's statements autocommit.
            if connection.get_execution_options().get("gpucloud_write", False):
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        self._write_lock = asyncio.Lock()
        self._reader: SyncConnection | None = None
        self._writer: SyncConnection | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        with _translate_outage():
            if self._reader is None or self._reader.invalidated or self._reader.closed:
                self._reader = self.engine.connect()
            conn = self._reader
            try:
                yield InlineSQLiteConnection(conn)
            finally:
                conn.rollback()  # ends SQLAlchemy's own transaction; no BEGIN was issued

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        async with self._write_lock:
            with _translate_outage():
                if self._writer is None or self._writer.invalidated or self._writer.closed:
                    self._writer = self.engine.connect().execution_options(gpucloud_write=True)
                conn = self._writer
                await self._begin_immediate(conn)
                try:
                    yield InlineSQLiteConnection(conn)
                except BaseException:
                    conn.rollback()
                    raise
                try:
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise

    async def _begin_immediate(self, conn: SyncConnection) -> None:
        """BEGIN IMMEDIATE, retried with back-off while another process writes."""
        deadline = time.monotonic() + self.busy_timeout_s
        pause = 0.001
        while True:
            try:
                conn.begin()
                return
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def ping(self) -> None:
        # A plain SELECT succeeds while another process holds the write lock and every
        # write times out, so readiness takes the write lock (and writes nothing).
        async with self.write() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()
        self._reader = self._writer = None
        self.engine.dispose()


class PostgresDatabase(Database):
    """PostgreSQL through asyncpg, with a pool per process."""

    dialect = "postgresql"

    def __init__(self, url: URL, settings: Settings) -> None:
        server_settings = {"application_name": "gpucloud"}
        if settings.db_statement_timeout_ms:
            server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        self.engine = create_async_engine(
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

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        with _translate_outage():
            async with self.engine.connect() as conn, conn.begin():
                yield PostgresConnection(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        with _translate_outage():
            async with self.engine.connect() as conn, conn.begin():
                yield PostgresConnection(conn)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


@contextmanager
def _translate_outage() -> Iterator[None]:
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
