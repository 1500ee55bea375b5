"""PostgreSQL for the benchmark: the small database, copied in, cloned once per scenario.

A run makes one template database: created empty, migrated by `gpucloud db upgrade`,
then filled with every row of the small SQLite database (bench.load_data) by asyncpg's
binary COPY (`copy_records_to_table`), column by column by name, each value converted
to the PostgreSQL column's type. The user triggers of the tables (migration 0003's, which
bump `owners.version` and `owners.key_count` on every change to `ssh_keys`) are disabled
while copying: the owners arrive with the counts and versions SQLite's own triggers
kept, and a check afterwards proves every `key_count` equals the owner's keys. After a
VACUUM ANALYZE (the planner sees the data as a live database's would) the template is
closed to connections, and each scenario gets a fresh `CREATE DATABASE … TEMPLATE …`.

Every database is named `gpucloud_bench_<pid>_…` and dropped at the end, also on failure;
those of an earlier run whose process is gone (killed before it could clean up) are
dropped at the start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sqlite3
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from bench.load_data import Dataset, migrate_url

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
NAME_PREFIX = "gpucloud_bench_"
_SKIPPED_TABLES = frozenset({"alembic_version"})  # the migration wrote it already
_T = TypeVar("_T")


class PostgresError(Exception):
    """The PostgreSQL part could not be prepared; the message says why."""


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run `coroutine`; a connection or server error becomes a PostgresError."""
    try:
        return asyncio.run(coroutine)
    except (OSError, asyncpg.PostgresError) as exc:
        raise PostgresError(f"{type(exc).__name__}: {exc}") from exc


def unreachable(admin_url: str) -> str | None:
    """None when a PostgreSQL server answers at `admin_url`, else why not."""

    async def probe() -> None:
        conn = await asyncpg.connect(admin_url, timeout=3)
        await conn.close()

    try:
        _run(probe())
    except (PostgresError, TimeoutError) as exc:
        return f"no PostgreSQL server answers at {admin_url} ({exc})"
    return None


def database_url(admin_url: str, name: str) -> str:
    """The URL of database `name` on the server of `admin_url`."""
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


# ---------------------------------------------------------------------------- copy


def _timestamp(value: Any, *, aware: bool) -> dt.datetime | None:
    # SQLite keeps SQLAlchemy's naive UTC text ("2026-12-02 07:53:38.810000").
    if value is None:
        return None
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    if aware and parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed


def _same(value: Any) -> Any:
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "timestamp with time zone": lambda v: _timestamp(v, aware=True),
    "timestamp without time zone": lambda v: _timestamp(v, aware=False),
    "boolean": lambda v: None if v is None else bool(v),
    "bytea": lambda v: None if v is None else bytes(v),
    "smallint": lambda v: None if v is None else int(v),
    "integer": lambda v: None if v is None else int(v),
    "bigint": lambda v: None if v is None else int(v),
    "character varying": _same,
    "text": _same,
}


async def _tables_in_order(conn: asyncpg.Connection) -> list[str]:
    """The public tables, each after the tables its foreign keys refer to."""
    tables = [
        r["tablename"]
        for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        if r["tablename"] not in _SKIPPED_TABLES
    ]
    refers: dict[str, set[str]] = {t: set() for t in tables}
    for r in await conn.fetch(
        "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent "
        "FROM pg_constraint WHERE contype = 'f'"
    ):
        if r["child"] in refers and r["parent"] != r["child"]:
            refers[r["child"]].add(r["parent"])
    ordered: list[str] = []
    while refers:
        ready = sorted(t for t, parents in refers.items() if parents <= set(ordered))
        if not ready:
            raise PostgresError(f"foreign keys form a cycle between {sorted(refers)}")
        ordered += ready
        for table in ready:
            del refers[table]
    return ordered


async def _copy(source: sqlite3.Connection, url: str) -> dict[str, int]:
    """Every row of `source` into the migrated database at `url`; rows copied per table."""
    conn = await asyncpg.connect(url)
    try:
        copied = {}
        tables = await _tables_in_order(conn)
        async with conn.transaction():
            for table in tables:
                await conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
            for table in tables:
                columns = await conn.fetch(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                    table,
                )
                unknown = [c for c in columns if c["data_type"] not in _CONVERTERS]
                if unknown:
                    raise PostgresError(
                        f"bench/postgres.py cannot copy {table}.{unknown[0]['column_name']} "
                        f"({unknown[0]['data_type']}): add its type to _CONVERTERS"
                    )
                names = [c["column_name"] for c in columns]
                convert = [_CONVERTERS[c["data_type"]] for c in columns]
                quoted = ", ".join(f'"{n}"' for n in names)
                rows = source.execute(f'SELECT {quoted} FROM "{table}"').fetchall()  # noqa: S608 (names from the catalogue)
                records = [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
                await conn.copy_records_to_table(table, records=records, columns=names)
                copied[table] = len(records)
            for table in tables:
                await conn.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')
        await _check(conn, copied)
        await conn.execute("VACUUM ANALYZE")
        return copied
    finally:
        await conn.close()


async def _check(conn: asyncpg.Connection, copied: dict[str, int]) -> None:
    """Raise PostgresError unless every table holds its rows and every key count is true."""
    for table, rows in copied.items():
        found = await conn.fetchval(f'SELECT count(*) FROM "{table}"')  # noqa: S608
        if found != rows:
            raise PostgresError(f"{table}: {found} rows in PostgreSQL, {rows} copied")
    wrong = await conn.fetchval(
        "SELECT count(*) FROM owners o WHERE o.key_count <> "
        "(SELECT count(*) FROM ssh_keys k WHERE k.owner_id = o.id)"
    )
    if wrong:
        raise PostgresError(f"{wrong} owners' key_count differs from their number of keys")


# ---------------------------------------------------------------------------- databases


class PostgresDatabases:
    """The run's template and its clones on one server; `close()` drops them all."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.stem = f"{NAME_PREFIX}{os.getpid()}_"
        self.template: str | None = None
        self.created: list[str] = []
        self.copied: dict[str, int] = {}
        self.build_seconds = 0.0

    def url(self, name: str) -> str:
        return database_url(self.admin_url, name)

    async def _admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    def _create(self, name: str, template: str | None = None) -> str:
        clause = f" TEMPLATE {template}" if template else ""
        for attempt in range(20):
            try:
                _run(self._admin(f"CREATE DATABASE {name}{clause}"))
                break
            except PostgresError as exc:
                # "source database is being accessed by other users": an autovacuum
                # worker that started before the template was closed; it soon leaves.
                if not isinstance(exc.__cause__, asyncpg.ObjectInUseError) or attempt == 19:
                    raise
                time.sleep(0.25)
        self.created.append(name)
        return name

    def prepare(self, small: Dataset) -> None:
        """Build the template from the small SQLite database (and drop stale leftovers)."""
        started = time.perf_counter()
        self.drop_stale()
        name = self._create(f"{self.stem}template")
        try:
            migrate_url(self.url(name))
        except RuntimeError as exc:
            raise PostgresError(str(exc)) from exc
        # immutable: read only, and no -wal or -shm file appears beside the cached database.
        source = sqlite3.connect(f"file:{small.path}?mode=ro&immutable=1", uri=True)
        try:
            self.copied = _run(_copy(source, self.url(name)))
        finally:
            source.close()
        # Closed to connections (autovacuum included), so that clones never wait for it.
        _run(self._admin(f"ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"))
        self.template = name
        self.build_seconds = time.perf_counter() - started

    def fresh(self, slug: str) -> str:
        """A new database cloned from the template; returns its URL."""
        if self.template is None:
            raise PostgresError("the template database is not built (call prepare first)")
        name = f"{self.stem}{re.sub(r'[^a-z0-9]+', '_', slug.lower())}"
        self.drop(name)
        return self.url(self._create(name, self.template))

    def drop(self, name_or_url: str) -> None:
        name = name_or_url.rpartition("/")[2]
        statements = [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]
        if name == self.template:
            statements.insert(0, f"ALTER DATABASE {name} WITH IS_TEMPLATE false")
        _run(self._admin(*statements))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> list[str]:
        """Drop every database this run created; returns the errors (empty when all went)."""
        errors = []
        for name in sorted(self.created, key=lambda n: n == self.template):  # clones first
            try:
                self.drop(name)
            except PostgresError as exc:
                errors.append(f"could not drop {name}: {exc}")
        return errors

    def drop_stale(self) -> None:
        """Drop the benchmark databases of earlier runs whose process is gone."""

        async def stale() -> list[str]:
            conn = await asyncpg.connect(self.admin_url)
            try:
                rows = await conn.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1", NAME_PREFIX + "%"
                )
            finally:
                await conn.close()
            return [row["datname"] for row in rows]

        for name in _run(stale()):
            match = re.match(rf"{NAME_PREFIX}(\d+)_", name)
            if match is None:
                continue
            # This process's own names too: an earlier run had its process id.
            if Path(f"/proc/{match.group(1)}").exists() and not name.startswith(self.stem):
                continue
            _run(
                self._admin(
                    f"ALTER DATABASE {name} WITH IS_TEMPLATE false",
                    f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                )
            )
