"""The unit of work on SQLite and on PostgreSQL.

The request owns the transaction: a route opens `database.read()` or
`database.write()`, hands the connection to a service, and the context manager commits
when the block ends without error. Services never commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import URL, event, text
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import NullPool

from gpucloud.config import Settings
from gpucloud.db.connection import Connection, InlineSQLiteConnection, PostgresConnection
from gpucloud.db.urls import normalize_url, sqlite_path
from gpucloud.errors import UnavailableError

# A unique index refused a write: SQLAlchemy's on PostgreSQL, sqlite3's on the fast path.
INTEGRITY_ERRORS = (IntegrityError, sqlite3.IntegrityError)


class Database:
    """The unit of work that routes and CLI commands use, for one database."""

    dialect: str

    def read(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads (on SQLite, each statement sees its own snapshot)."""
        raise NotImplementedError

    def write(self) -> AbstractAsyncContextManager[Connection]:
        """A connection in a write transaction, committed when the block ends cleanly."""
        raise NotImplementedError

    async def ping(self) -> None:
        """Raises UnavailableError unless the database can serve reads and writes."""
        raise NotImplementedError

    async def dispose(self) -> None:
        """Close every connection."""
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
    than the query). Reads autocommit statement by statement (WAL readers never wait).
    Writers queue on an asyncio lock inside the process, then take the file's write lock
    with BEGIN IMMEDIATE, retried asynchronously while another process holds it (for up
    to `sqlite_busy_timeout_ms`): waiting never blocks the event loop, and a transaction
    never fails half-way on a lock upgrade. Writers share transactions (group commit, see
    `_open_batch`), each in a savepoint, and are answered once their transaction is
    committed. Transactions are begun and ended on the sqlite3 connection itself;
    SQLAlchemy's own transaction on it issues no SQL.
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
            # Autocommit at the driver: BEGIN is issued by write() alone.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            # Lock waits happen in write(), asynchronously; SQLite itself never sleeps.
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        self._write_lock = asyncio.Lock()
        self._commit_in_thread = synchronous == "FULL"
        self._batch: asyncio.Future[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._reader: tuple[SyncConnection, sqlite3.Connection] | None = None
        self._writer: tuple[SyncConnection, sqlite3.Connection] | None = None

    def _open(self) -> tuple[SyncConnection, sqlite3.Connection]:
        conn = self.engine.connect()
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        return conn, raw

    @staticmethod
    def _usable(pair: tuple[SyncConnection, sqlite3.Connection] | None) -> bool:
        return pair is not None and not pair[0].invalidated and not pair[0].closed

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        with _translate_outage():
            if not self._usable(self._reader):
                self._reader = self._open()
            assert self._reader is not None
            conn, raw = self._reader
            try:
                yield InlineSQLiteConnection(conn, raw)
            finally:
                conn.rollback()  # ends SQLAlchemy's bookkeeping; no SQL, nothing is open

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        async with self._write_lock:
            with _translate_outage():
                if self._batch is None:
                    await self._open_batch()
                assert self._writer is not None and self._batch is not None
                conn, raw = self._writer
                batch = self._batch
                raw.execute("SAVEPOINT unit")
                try:
                    yield InlineSQLiteConnection(conn, raw)
                except BaseException:
                    if raw.in_transaction:
                        raw.execute("ROLLBACK TO unit")
                        raw.execute("RELEASE unit")
                    raise
                if not raw.in_transaction:  # SQLite rolled the whole batch back
                    raise UnavailableError("The database refused the write; try again shortly")
                raw.execute("RELEASE unit")
        # Answer only once the batch is on disk: a 201 is a promise.
        await asyncio.shield(batch)

    async def _open_batch(self) -> None:
        """Begin the transaction that the next writers share, and schedule its commit.

        Group commit: writers run one after another, each in a savepoint of one
        transaction, and one COMMIT (one fsync) makes all of them durable. The commit
        queues on the write lock behind the writers already waiting, so a batch holds
        whoever arrived while the previous one was being written to disk.
        """
        if not self._usable(self._writer):
            self._writer = self._open()
        assert self._writer is not None
        await self._begin_immediate(self._writer[1])
        self._batch = asyncio.get_running_loop().create_future()
        self._committer = asyncio.create_task(self._commit_batch())

    async def _commit_batch(self) -> None:
        async with self._write_lock:
            batch, self._batch = self._batch, None
            assert batch is not None and self._writer is not None
            conn, raw = self._writer
            try:
                with _translate_outage():
                    if self._commit_in_thread:
                        # The fsync of synchronous=FULL takes a millisecond or more: the
                        # event loop goes on serving reads meanwhile (sqlite3 releases
                        # the GIL while it waits).
                        await asyncio.to_thread(raw.commit)
                    else:
                        raw.commit()
            except BaseException as exc:
                if raw.in_transaction:
                    raw.rollback()
                batch.set_exception(exc)
            else:
                batch.set_result(None)
            finally:
                conn.rollback()  # ends SQLAlchemy's bookkeeping; no SQL, nothing is open

    async def _begin_immediate(self, raw: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, retried with back-off while another process writes."""
        deadline = time.monotonic() + self.busy_timeout_s
        pause = 0.001
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def ping(self) -> None:
        # A plain SELECT succeeds while another process holds the write lock and every
        # write times out, so readiness takes the write lock (and writes nothing).
        async with self.write() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._committer is not None and not self._committer.done():
            await self._committer
        for pair in (self._reader, self._writer):
            if pair is not None:
                pair[0].close()
        self._reader = self._writer = None
        self.engine.dispose()


class PostgresDatabase(Database):
    """PostgreSQL through asyncpg, with a pool per process."""

    dialect = "postgresql"

    def __init__(self, url: URL, settings: Settings) -> None:
        # Imported here: SQLAlchemy's asyncio layer and asyncpg cost a SQLite server
        # 10 MB it would never use.
        from sqlalchemy.ext.asyncio import create_async_engine

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
    except sqlite3.OperationalError as exc:
        if _is_outage_message(str(exc)):
            raise UnavailableError(
                "The database is unavailable or busy; try again shortly"
            ) from exc
        raise
    except (OperationalError, DBAPIError) as exc:
        if is_outage(exc):
            raise UnavailableError(
                "The database is unavailable or busy; try again shortly"
            ) from exc
        raise


_OUTAGE_MARKERS = (
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


def _is_outage_message(message: str) -> bool:
    message = message.lower()
    return any(marker in message for marker in _OUTAGE_MARKERS)


def is_outage(exc: DBAPIError) -> bool:
    """True when a driver error means "cannot reach or lock the database" rather than a bug."""
    if exc.connection_invalidated:
        return True
    message = str(exc.orig) if exc.orig is not None else ""
    return _is_outage_message(message) or isinstance(exc.orig, OSError)
