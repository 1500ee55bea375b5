"""The database — SQLite or PostgreSQL — and the units of work that services run in.

The request owns the transaction: a route (or CLI command) opens a unit, hands it to a
service, and the unit commits when the block ends without error. Services never commit.

- `database.fetch(statement, values)`: one statement on its own (one statement is
  always one consistent snapshot), for the hottest reads such as authentication.
- `async with database.read() as unit`: several reads in one snapshot, on both
  databases (a read transaction on SQLite; REPEATABLE READ, READ ONLY on PostgreSQL).
- `async with database.write() as unit`: one transaction, committed when the block ends
  cleanly, before the request is answered.

A unit runs `Statement`s (gpucloud.db.statements) on the driver — sqlite3 or asyncpg —
in the same way on both: compile for the dialect, convert the parameters, call the
driver, build records by name. The two units below differ only in that driver call.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    suppress,
)
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sqlalchemy import URL
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable

from gpucloud.config import Settings
from gpucloud.db.statements import Statement, compile_all
from gpucloud.db.urls import normalize_url, sqlite_path
from gpucloud.errors import UnavailableError

if TYPE_CHECKING:  # asyncpg is loaded only for PostgreSQL
    import asyncpg

R = TypeVar("R")
# Distinct reads kept by fetch(..., reuse=True) on SQLite (API keys in use, in practice).
_REUSED_MAX = 10_000
# SQLite's page cache of each connection, in KiB (its default is 2,000). The reader's
# hot pages are the API keys in use and the owners being listed, which the body cache
# mostly answers anyway; the writer's are the b-tree leaves of a batch. Pages beyond
# these come from the operating system's file cache (docs/decisions.md D60).
_READER_CACHE_KIB = 512
_WRITER_CACHE_KIB = 1024
Values = Mapping[str, Any] | None


class IntegrityError(Exception):
    """A constraint of the database refused a write (a unique index, a foreign key)."""


class Unit:
    """A connection inside a unit of work: runs statements, returns records by name."""

    dialect: Dialect
    # Whether the database runs write transactions one at a time (SQLite's write lock),
    # so that no row lock is needed to keep two writers apart.
    serialised = False

    @overload
    async def fetch(self, statement: Statement[R], values: Values = None) -> list[R]: ...
    @overload
    async def fetch(self, statement: Executable, values: Values = None) -> list[Any]: ...

    async def fetch(
        self, statement: Statement[Any] | Executable, values: Values = None
    ) -> list[Any]:
        """The rows of a SELECT (or of DML with RETURNING), as records.

        A plain SQLAlchemy statement (a one-off query of the admin CLI or a test) is
        compiled for this one call; its rows are named tuples of its columns.
        """
        prepared = statement if isinstance(statement, Statement) else Statement(statement)
        form = prepared.compiled(self.dialect, values)
        return form.records(await self._rows(form.sql, form.arguments(values)))

    @overload
    async def fetch_one(self, statement: Statement[R], values: Values = None) -> R | None: ...
    @overload
    async def fetch_one(self, statement: Executable, values: Values = None) -> Any: ...

    async def fetch_one(self, statement: Statement[Any] | Executable, values: Values = None) -> Any:
        """The first row as a record, or None."""
        rows = await self.fetch(statement, values)
        return rows[0] if rows else None

    async def run(self, statement: Statement[Any] | Executable, values: Values = None) -> int:
        """Run an INSERT, UPDATE or DELETE; the number of rows it touched."""
        prepared = statement if isinstance(statement, Statement) else Statement(statement)
        form = prepared.compiled(self.dialect, values)
        return await self._rowcount(form.sql, form.arguments(values))

    async def _rows(self, sql: str, arguments: list[Any]) -> list[Any]:
        raise NotImplementedError

    async def _rowcount(self, sql: str, arguments: list[Any]) -> int:
        raise NotImplementedError


class SQLiteUnit(Unit):
    """Statements on a sqlite3 connection, run inline in the event loop's thread.

    An indexed SQLite statement takes microseconds, less than handing it to a thread and
    back; nothing here waits on a lock (docs/decisions.md D20).
    """

    dialect = SQLiteDialect_pysqlite()
    serialised = True

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    # Plain try/except rather than the _sqlite_errors context manager: these run for
    # every statement, and a generator-based context manager costs more than the query.
    async def _rows(self, sql: str, arguments: list[Any]) -> list[Any]:
        try:
            rows: list[Any] = self._raw.execute(sql, arguments).fetchall()
        except sqlite3.Error as exc:
            _raise_translated(_translated_sqlite(exc), exc)
            raise
        return rows

    async def _rowcount(self, sql: str, arguments: list[Any]) -> int:
        try:
            return self._raw.execute(sql, arguments).rowcount
        except sqlite3.Error as exc:
            _raise_translated(_translated_sqlite(exc), exc)
            raise


class PostgresUnit(Unit):
    """Statements on an asyncpg connection (asyncpg prepares and caches each one)."""

    def __init__(self, connection: asyncpg.Connection, dialect: Dialect) -> None:
        self._connection = connection
        self.dialect = dialect

    async def _rows(self, sql: str, arguments: list[Any]) -> list[Any]:
        try:
            rows: list[Any] = await self._connection.fetch(sql, *arguments)
        except Exception as exc:
            _raise_translated(_translated_postgres(exc), exc)
            raise
        return rows

    async def _rowcount(self, sql: str, arguments: list[Any]) -> int:
        try:
            status: str = await self._connection.execute(sql, *arguments)
        except Exception as exc:
            _raise_translated(_translated_postgres(exc), exc)
            raise
        # "UPDATE 2", "DELETE 0", "INSERT 0 1": the count is the last word ("CREATE
        # TABLE" and other DDL have none).
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0


class Database:
    """The units of work that routes and CLI commands use, for one database."""

    name: str
    dialect: Dialect

    async def fetch(
        self,
        statement: Statement[R],
        values: Mapping[str, Any] | None = None,
        *,
        reuse: bool = False,
    ) -> list[R]:
        """One statement on its own, outside any unit (one statement is one snapshot).

        With `reuse`, the rows may come from memory: the rows this process last read for
        the same statement and values, as long as nothing has been committed to the
        database since — by any process — so that they are exactly what the statement
        would return now. SQLite tells that cheaply (PRAGMA data_version); PostgreSQL has
        no such signal, and always runs the statement. For a read whose result depends
        on nothing but the stored data.
        """
        raise NotImplementedError

    def read(self) -> AbstractAsyncContextManager[Unit]:
        """A unit for reads that all see one snapshot of the database."""
        raise NotImplementedError

    def write(self) -> AbstractAsyncContextManager[Unit]:
        """A unit in a write transaction, committed when the block ends cleanly."""
        raise NotImplementedError

    async def ping(self) -> None:
        """Raises UnavailableError unless the database can serve reads and writes."""
        raise NotImplementedError

    async def dispose(self) -> None:
        """Close every connection."""
        raise NotImplementedError


def create_database(settings: Settings) -> Database:
    """The database of `settings.database_url`, its statements compiled for it."""
    url = normalize_url(settings.database_url)
    database: Database
    if url.get_backend_name() == "sqlite":
        database = SQLiteDatabase(url, settings)
    else:
        database = PostgresDatabase(url, settings)
    # Every statement the services declared, compiled now: a mismatch between a
    # statement and its record fails at start-up, and the first requests pay nothing.
    compile_all(database.dialect)
    return database


class SQLiteDatabase(Database):
    """SQLite in WAL mode, its statements run inline in the event loop.

    Each process keeps two connections open: one for reads, one for writes. Statements
    run to completion without yielding to the event loop, so no pool is needed (checking
    a connection out of one costs more than the query). Single statements run on the
    reader in autocommit mode; a read unit is a deferred transaction on it, so that its
    statements share one snapshot (read units are serialised by a lock, which they hold
    only while their statements run).

    Writers queue on an asyncio lock inside the process, then take the file's write lock
    with BEGIN IMMEDIATE, retried asynchronously while another process holds it (for up
    to `sqlite_busy_timeout_ms`): waiting never blocks the event loop, and a transaction
    never fails half-way on a lock upgrade. Writers share transactions (group commit, see
    `_open_batch`), each in a savepoint (`_SQLiteWrite`), and are answered once their
    transaction is committed.
    """

    name = "sqlite"
    dialect = SQLiteUnit.dialect

    def __init__(self, url: URL, settings: Settings) -> None:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._target = str(path) if path is not None else ":memory:"
        self.busy_timeout_s = settings.sqlite_busy_timeout_ms / 1000
        self._synchronous = settings.sqlite_synchronous
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        # The fsync of synchronous=FULL runs in a thread of its own; one thread (not the
        # loop's pool of several) keeps one malloc arena, not one per pool thread.
        self._committer_thread = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpucloud-commit")
            if settings.sqlite_synchronous == "FULL"
            else None
        )
        # The open batch: a future for each writer in it, resolved once it is committed.
        self._batch: list[asyncio.Future[None]] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_unit: SQLiteUnit
        # fetch(..., reuse=True): rows read since the data version last moved.
        self._reused: dict[tuple[Any, ...], list[Any]] = {}
        self._reused_version = -1
        self._writer: sqlite3.Connection | None = None

    def _connect(self, cache_kib: int) -> sqlite3.Connection:
        # Autocommit at the driver (isolation_level=None): transactions are begun and
        # ended here, explicitly. Used from the event loop's thread only; the flag lets a
        # connection move to whichever thread runs that loop (tests start many loops).
        with _sqlite_errors():
            raw = sqlite3.connect(
                self._target, timeout=0, isolation_level=None, check_same_thread=False
            )
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute(f"PRAGMA synchronous={self._synchronous}")
            # Lock waits happen in write(), asynchronously; SQLite itself never sleeps.
            raw.execute("PRAGMA busy_timeout=0")
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute(f"PRAGMA cache_size=-{cache_kib}")
        return raw

    def _read_connection(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = self._connect(_READER_CACHE_KIB)
            self._reader_unit = SQLiteUnit(self._reader)
        return self._reader

    async def fetch(
        self,
        statement: Statement[R],
        values: Mapping[str, Any] | None = None,
        *,
        reuse: bool = False,
    ) -> list[R]:
        raw = self._read_connection()
        if self._read_lock.locked():
            # A read unit's transaction is open on the reader, with a snapshot that may
            # be older than this statement should see: wait for it to end. (Statements
            # never yield, so nothing can open one between this check and the query.)
            async with self._read_lock:
                return await self._reader_unit.fetch(statement, values)
        if not reuse:
            return await self._reader_unit.fetch(statement, values)
        try:
            # Moves whenever another connection — another process, or this one's
            # writer — has committed: the reader's own reads never move it.
            version = raw.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            _raise_translated(_translated_sqlite(exc), exc)
            raise
        if version != self._reused_version:
            self._reused.clear()
            self._reused_version = version
        key = (statement, *values.items()) if values else (statement,)
        rows = self._reused.get(key)
        if rows is None:
            rows = await self._reader_unit.fetch(statement, values)
            if len(self._reused) >= _REUSED_MAX:
                self._reused.clear()
            self._reused[key] = rows
        return rows

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Unit]:
        async with self._read_lock:
            with _sqlite_errors():
                raw = self._read_connection()
                raw.execute("BEGIN")
                try:
                    yield SQLiteUnit(raw)
                finally:
                    raw.execute("COMMIT")  # a read transaction: nothing to keep or undo

    def write(self) -> AbstractAsyncContextManager[Unit]:
        return _SQLiteWrite(self)

    async def _open_batch(self) -> None:
        """Begin the transaction that the next writers share, and schedule its commit.

        Group commit: writers run one after another, each in a savepoint of one
        transaction, and one COMMIT (one fsync) makes all of them durable. The commit
        queues on the write lock behind the writers already waiting, so a batch holds
        whoever arrived while the previous one was being written to disk.
        """
        if self._writer is None:
            self._writer = self._connect(_WRITER_CACHE_KIB)
        await self._begin_immediate(self._writer)
        self._batch = []
        self._committer = asyncio.create_task(self._commit_batch())

    async def _commit_batch(self) -> None:
        async with self._write_lock:
            batch, self._batch = self._batch, None
            assert batch is not None and self._writer is not None
            raw = self._writer
            try:
                with _sqlite_errors():
                    if self._committer_thread is not None:
                        # The fsync of synchronous=FULL takes a millisecond or more: the
                        # event loop goes on serving reads meanwhile (sqlite3 releases
                        # the GIL while it waits).
                        loop = asyncio.get_running_loop()
                        await loop.run_in_executor(self._committer_thread, raw.commit)
                    else:
                        raw.commit()
            except BaseException as exc:
                if raw.in_transaction:
                    raw.rollback()
                for answered in batch:
                    if not answered.done():  # a writer that stopped waiting cancelled its own
                        answered.set_exception(exc)
            else:
                for answered in batch:
                    if not answered.done():
                        answered.set_result(None)

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
        async with self.write() as unit:
            await unit.fetch(_PING)

    async def dispose(self) -> None:
        if self._committer is not None and not self._committer.done():
            await self._committer
        for raw in (self._reader, self._writer):
            if raw is not None:
                raw.close()
        self._reader = self._writer = None
        if self._committer_thread is not None:
            self._committer_thread.shutdown(wait=False)


class _SQLiteWrite:
    """One writer's unit of work on SQLite, `SQLiteDatabase.write()`: its turn on the write
    lock, a savepoint in the open batch's transaction, and, once the block has ended
    cleanly, the wait for the batch's commit.

    A class rather than a generator-based context manager: every write enters and leaves
    one, and the generator's own machinery cost a PATCH several per cent (D63). What the
    block raises is undone to the savepoint, and the batch's other writers are not
    affected. Errors of the driver come out as `IntegrityError` or `UnavailableError`.
    """

    __slots__ = ("_database", "_raw")

    def __init__(self, database: SQLiteDatabase) -> None:
        self._database = database

    async def __aenter__(self) -> Unit:
        database = self._database
        await database._write_lock.acquire()
        try:
            if database._batch is None:
                await database._open_batch()
            assert database._writer is not None
            raw = self._raw = database._writer
            raw.execute("SAVEPOINT unit")
        except BaseException as exc:
            database._write_lock.release()
            _raise_translated(_translated_sqlite(exc), exc)
            raise
        return SQLiteUnit(raw)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: Any
    ) -> None:
        database, raw = self._database, self._raw
        try:
            if exc is not None:
                if raw.in_transaction:
                    raw.execute("ROLLBACK TO unit")
                    raw.execute("RELEASE unit")
                _raise_translated(_translated_sqlite(exc), exc)
                return  # the block's own exception goes on, unless the driver's: translated
            if not raw.in_transaction:  # SQLite rolled the whole batch back
                raise UnavailableError("The database refused the write; try again shortly")
            raw.execute("RELEASE unit")
            assert database._batch is not None
            answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            database._batch.append(answered)
        except (sqlite3.Error, OSError) as error:
            _raise_translated(_translated_sqlite(error), error)
            raise
        finally:
            database._write_lock.release()
        # Answer only once the batch is on disk: a 201 is a promise. A writer cancelled
        # here cancels only its own future; the batch commits for the others.
        await answered


class PostgresDatabase(Database):
    """PostgreSQL through asyncpg, with a pool of connections per process."""

    name = "postgresql"

    def __init__(self, url: URL, settings: Settings) -> None:
        # Imported here: asyncpg and SQLAlchemy's PostgreSQL dialect cost a SQLite server
        # memory it would never use.
        from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

        self.dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    import asyncpg

                    settings = self._settings
                    server_settings = {"application_name": "gpucloud"}
                    if settings.db_statement_timeout_ms:
                        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=settings.db_pool_size + settings.db_max_overflow,
                        max_inactive_connection_lifetime=60,
                        timeout=settings.db_connect_timeout_s,
                        server_settings=server_settings,
                        reset=_end_transaction,
                    )
        return self._pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        with _postgres_errors():
            pool = await self._connections()
            connection = await pool.acquire(timeout=self._settings.db_pool_timeout_s)
        try:
            yield connection
        finally:
            await pool.release(connection)

    async def fetch(
        self,
        statement: Statement[R],
        values: Mapping[str, Any] | None = None,
        *,
        reuse: bool = False,
    ) -> list[R]:
        async with self._connection() as connection:
            return await PostgresUnit(connection, self.dialect).fetch(statement, values)

    def read(self) -> AbstractAsyncContextManager[Unit]:
        return self._transaction(isolation="repeatable_read", readonly=True)

    def write(self) -> AbstractAsyncContextManager[Unit]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self, **options: Any) -> AsyncIterator[Unit]:
        """A unit in one transaction of asyncpg's `options`, committed if it ends cleanly."""
        async with self._connection() as connection:
            with _postgres_errors():
                transaction = connection.transaction(**options)
                await transaction.start()
            try:
                yield PostgresUnit(connection, self.dialect)
            except BaseException:
                await _abandon(transaction)
                raise
            with _postgres_errors():
                await transaction.commit()

    async def ping(self) -> None:
        await self.fetch(_PING)

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _abandon(transaction: asyncpg.transaction.Transaction) -> None:
    """Roll back a unit that raised. The unit's own error is the one to report: when the
    connection is gone (a cut link, or asyncpg has already detached it from the pool),
    the rollback fails too and the pool discards the connection."""
    with suppress(Exception):
        await transaction.rollback()


async def _end_transaction(connection: asyncpg.Connection) -> None:
    # What a connection needs before it goes back to the pool. Units hold no session
    # state (no SET, LISTEN or advisory locks), so asyncpg's default reset — a round trip
    # per release — is not needed; a transaction left open by a cancelled unit is ended.
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def _ping_statement() -> Statement[Any]:
    from sqlalchemy import literal_column, select

    return Statement(select(literal_column("1").label("one")))


_PING = _ping_statement()


# ------------------------------------------------------------------ driver errors
#
# Each driver's errors become one of two kinds: IntegrityError (a constraint refused
# the write: a bug or a race the service maps to a 409), or UnavailableError (the
# database cannot be reached or is busy: 503 with Retry-After). Anything else is a bug.

_SQLITE_OUTAGE_MARKERS = (
    "database is locked",
    "unable to open database",
    "disk i/o error",
)
# PostgreSQL SQLSTATEs that mean "cannot reach or use the server right now".
_POSTGRES_OUTAGE_CLASS = "08"  # connection exceptions
_POSTGRES_OUTAGE_STATES = frozenset(
    {
        "57014",  # query_canceled: statement_timeout
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "53300",  # too_many_connections
        "40001",  # serialization_failure: retry
        "40P01",  # deadlock_detected: retry
    }
)
_UNREACHABLE = "The database is unreachable; try again shortly"
_BUSY = "The database is unavailable or busy; try again shortly"


def _translated_sqlite(exc: BaseException) -> BaseException:
    """What a sqlite3 (or OS) error means to gpucloud; anything else comes back as it was."""
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(str(exc))
    if isinstance(exc, sqlite3.OperationalError):
        if any(marker in str(exc).lower() for marker in _SQLITE_OUTAGE_MARKERS):
            return UnavailableError(_BUSY)
    elif isinstance(exc, OSError):
        return UnavailableError(_UNREACHABLE)
    return exc


def _translated_postgres(exc: BaseException) -> BaseException:
    """What an asyncpg (or OS) error means to gpucloud; anything else comes back as it was."""
    import asyncpg

    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(str(exc))
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        if state in _POSTGRES_OUTAGE_STATES or state.startswith(_POSTGRES_OUTAGE_CLASS):
            return UnavailableError(_BUSY)
    elif isinstance(exc, asyncpg.InterfaceError | OSError | TimeoutError):
        # A cut connection ("connection is closed"), a refused or reset one, a connect
        # or pool timeout.
        return UnavailableError(_UNREACHABLE)
    return exc


def _raise_translated(translated: BaseException, original: BaseException) -> None:
    """Raise the translation of an error, if it has one (the caller re-raises otherwise)."""
    if translated is not original:
        raise translated from original


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        _raise_translated(_translated_sqlite(exc), exc)
        raise


@contextmanager
def _postgres_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        _raise_translated(_translated_postgres(exc), exc)
        raise
