"""One way to run a statement: the same records, types and snapshots on both databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateTable

from gpucloud.audit.service import Actor
from gpucloud.config import Settings
from gpucloud.db import (
    Database,
    IntegrityError,
    Statement,
    StatementError,
    Unit,
    UTCDateTime,
    create_database,
    utcnow,
)
from gpucloud.errors import NotFoundError
from gpucloud.owners import service as owner_service
from gpucloud.owners.models import owners
from gpucloud.ssh_keys import service
from gpucloud.ssh_keys.models import ssh_keys
from tests.support import databases
from tests.support.api_keys import open_database
from tests.support.bulk_keys import ed25519_public_line

# A table of every column type the models use, made by each test for itself.
_SCRATCH = MetaData()
_SAMPLES = Table(
    "statement_samples",
    _SCRATCH,
    Column("id", String(24), primary_key=True),
    Column("flag", Boolean, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("at", UTCDateTime(), nullable=True),
    Column("blob", LargeBinary, nullable=True),
    Column("label", String(64), nullable=True),
)


T = TypeVar("T")


class Sample(NamedTuple):
    # Deliberately not in the table's column order: records are built by name.
    label: str | None
    at: dt.datetime | None
    id: str
    blob: bytes | None
    count: int
    flag: bool


_ALL_SAMPLES = Statement(select(*_SAMPLES.columns).order_by(_SAMPLES.c.id), Sample)
_INSERT_SAMPLE = Statement(insert(_SAMPLES))


def on_both(
    work: Callable[[str], Awaitable[T]],
    sqlite_template: databases.SQLiteTemplate,
    postgres_template: databases.PostgresTemplate,
    directory: Path,
) -> tuple[T, T]:
    """What `work(database_url)` returns on a fresh SQLite and a fresh PostgreSQL database."""
    name = postgres_template.clone()
    try:
        on_postgres = asyncio.run(work(databases.postgres_url(name)))
    finally:
        databases.drop_postgres_database(name)
    return asyncio.run(work(sqlite_template.copy_to(directory))), on_postgres


async def _make_scratch_table(database: Database, *, with_default_column: bool = False) -> None:
    async with database.write() as unit:
        await unit.run(text(str(CreateTable(_SAMPLES).compile(dialect=database.dialect))))
        if with_default_column:
            await unit.run(
                text("ALTER TABLE statement_samples ADD COLUMN added INTEGER DEFAULT 7 NOT NULL")
            )


_AT = dt.datetime(2026, 12, 2, 10, 11, 12, 345000, tzinfo=dt.UTC)


async def _round_trip(database_url: str) -> list[Sample]:
    async with open_database(database_url) as database:
        await _make_scratch_table(database)
        async with database.write() as unit:
            await unit.run(
                _INSERT_SAMPLE,
                {
                    "id": "a",
                    "flag": True,
                    "count": 2**40,
                    "at": _AT,
                    "blob": b"\x00\xff",
                    "label": "é",
                },
            )
            await unit.run(
                _INSERT_SAMPLE,
                {"id": "b", "flag": False, "count": 0, "at": None, "blob": None, "label": None},
            )
        return await database.fetch(_ALL_SAMPLES)


def test_records_and_types_are_the_same_on_both_databases(
    sqlite_template: databases.SQLiteTemplate,
    postgres_template: databases.PostgresTemplate,
    tmp_path: Path,
) -> None:
    """If the same rows are written and read on SQLite and PostgreSQL, then the records are
    equal field by field, with the same Python types (aware UTC datetimes, bools, ints, bytes)."""
    on_sqlite, on_postgres = on_both(_round_trip, sqlite_template, postgres_template, tmp_path)
    assert on_sqlite == on_postgres
    for ours, theirs in zip(on_sqlite, on_postgres, strict=True):
        assert [type(v) for v in ours] == [type(v) for v in theirs]
    assert on_sqlite[0] == Sample("é", _AT, "a", b"\x00\xff", 2**40, True)
    assert on_sqlite[0].at is not None and on_sqlite[0].at.utcoffset() == dt.timedelta(0)


def test_the_same_service_operations_leave_the_same_rows_on_both_databases(
    sqlite_template: databases.SQLiteTemplate,
    postgres_template: databases.PostgresTemplate,
    tmp_path: Path,
) -> None:
    """If the same creates, renames, default changes and deletes run on both databases, then
    each owner's keys come back equal on both (ids and times aside), in the same order."""
    lines = [ed25519_public_line(f"key{i}@host") for i in range(5)]

    async def operations(database_url: str) -> list[tuple[Any, ...]]:
        async with open_database(database_url) as database:
            async with database.write() as unit:
                owner_id = await owner_service.get_or_create(unit, "alice")
            actor = Actor(owner_id=owner_id, api_key_id=None, client="test")
            ids = []
            for i, line in enumerate(lines):
                async with database.write() as unit:
                    new = service.prepare(f"key {i}", line)
                    ids.append((await service.create(unit, actor, new, max_keys=10)).id)
                # Keys created in one millisecond are listed by their (random) ids: a
                # later millisecond for each keeps the listing in creation order.
                await asyncio.sleep(0.002)
            async with database.write() as unit:
                await service.rename(unit, actor, ids[1], "renamed")
                await service.make_default(unit, actor, ids[3])
                await service.delete_key(unit, actor, ids[3])  # the default: promotes ids[4]
                await service.delete_key(unit, actor, ids[0])
            async with database.read() as unit:
                keys = await service.owner_keys(unit, owner_id)
        return [
            (k.name, k.public_key, k.is_default, k.fingerprint_sha256, k.key_type, k.key_bits)
            for k in keys.keys
        ] + [("version", keys.version)]

    on_sqlite, on_postgres = on_both(operations, sqlite_template, postgres_template, tmp_path)
    assert on_sqlite == on_postgres
    assert [row[0] for row in on_sqlite[:-1]] == ["renamed", "key 2", "key 4"]
    assert [row[2] for row in on_sqlite[:-1]] == [False, False, True]


async def test_an_insert_works_when_a_column_with_a_default_is_added(database_url: str) -> None:
    """If a table gains a column with a default, then an insert that does not name it still
    works, and the row reads back with the default."""
    async with open_database(database_url) as database:
        await _make_scratch_table(database, with_default_column=True)
        async with database.write() as unit:
            await unit.run(_INSERT_SAMPLE, {"id": "c", "flag": True, "count": 1})
        rows = await database.fetch(Statement(select(_SAMPLES.c.id, literal_column("added"))))
    assert [(row.id, row.added) for row in rows] == [("c", 7)]


def test_a_record_whose_fields_do_not_match_the_columns_stops_the_start(database_url: str) -> None:
    """If a statement's columns are not exactly its record's fields, then opening the
    database (which compiles every declared statement, as the server does at start-up)
    fails and names both."""

    class Wrong(NamedTuple):
        id: str
        name: str

    statement = Statement(select(ssh_keys.c.id, ssh_keys.c.public_key), Wrong)
    try:
        with pytest.raises(StatementError, match=r"Wrong has fields \['id', 'name'\].*public_key"):
            create_database(Settings(database_url=database_url))
    finally:
        del statement  # declared statements are held weakly: gone for the next test
        gc.collect()


async def test_the_reads_of_a_read_unit_share_one_snapshot(database_url: str) -> None:
    """If another connection commits a change between two reads of one read unit, then the
    second read still sees the state of the first, on both databases."""
    by_id = Statement(select(owners.c.name).where(owners.c.id == bindparam("id")))
    async with open_database(database_url) as database, open_database(database_url) as other:
        async with database.write() as unit:
            owner_id = await owner_service.get_or_create(unit, "before")
        async with database.read() as unit:
            first = await unit.fetch_one(by_id, {"id": owner_id})
            async with other.write() as writer:
                await writer.run(update(owners).where(owners.c.id == owner_id).values(name="after"))
            second = await unit.fetch_one(by_id, {"id": owner_id})
        after = await database.fetch(by_id, {"id": owner_id})
    assert first is not None and second is not None
    assert (first.name, second.name, after[0].name) == ("before", "before", "after")


async def test_a_unique_index_refusal_is_one_error_on_both_databases(database_url: str) -> None:
    """If a write breaks a unique index, then the unit raises gpucloud's IntegrityError,
    whichever the database, and nothing of that unit is kept."""
    async with open_database(database_url) as database:
        async with database.write() as unit:
            await owner_service.get_or_create(unit, "alice")
        with pytest.raises(IntegrityError):
            async with database.write() as unit:
                await unit.run(
                    insert(owners), {"id": "1" * 24, "name": "bob", "created_at": utcnow()}
                )
                await unit.run(
                    insert(owners), {"id": "2" * 24, "name": "alice", "created_at": utcnow()}
                )
        names = await database.fetch(Statement(select(owners.c.name).order_by(owners.c.name)))
    assert [row.name for row in names] == ["alice"]


async def test_every_write_to_an_owners_keys_moves_its_version_and_count(database_url: str) -> None:
    """If any statement inserts, updates or deletes an owner's SSH keys — through the
    services or as plain SQL — then the owner's version moves and its key count is the
    number of its keys, in the same transaction; other owners' versions do not move."""
    state = Statement(
        select(owners.c.version, owners.c.key_count).where(owners.c.id == bindparam("id"))
    )
    count = Statement(select(ssh_keys.c.id).where(ssh_keys.c.owner_id == bindparam("id")))
    async with open_database(database_url) as database:
        async with database.write() as unit:
            alice = await owner_service.get_or_create(unit, "alice")
            bob = await owner_service.get_or_create(unit, "bob")
        actor = Actor(owner_id=alice, api_key_id=None, client="test")

        async def check(label: str, before: int) -> int:
            (row,) = await database.fetch(state, {"id": alice})
            keys = await database.fetch(count, {"id": alice})
            assert row.version > before, f"{label} did not move the version"
            assert row.key_count == len(keys), label
            (other,) = await database.fetch(state, {"id": bob})
            assert other.version == 0, f"{label} moved another owner's version"
            return int(row.version)

        version = -1
        ids = []
        for i in range(3):
            async with database.write() as unit:
                new = service.prepare(f"k{i}", ed25519_public_line(f"k{i}@host"))
                ids.append((await service.create(unit, actor, new, max_keys=10)).id)
            version = await check("create", version)
        for label, work in (
            ("rename", lambda unit: service.rename(unit, actor, ids[1], "renamed")),
            ("makedefault", lambda unit: service.make_default(unit, actor, ids[2])),
            (
                "an expiry",
                lambda unit: unit.run(
                    update(ssh_keys).where(ssh_keys.c.id == ids[1]).values(expires_at=utcnow())
                ),
            ),
            ("a use", lambda unit: service.record_use(unit, alice, ids[1], utcnow())),
            ("delete of the default", lambda unit: service.delete_key(unit, actor, ids[2])),
            ("delete", lambda unit: service.delete_key(unit, actor, ids[0])),
            ("plain UPDATE", lambda unit: unit.run(update(ssh_keys).values(name="x"))),
            (
                "a key moved to another owner and back",
                lambda unit: _move_and_back(unit, ids[1], bob, alice),
            ),
            ("plain DELETE", lambda unit: unit.run(delete(ssh_keys))),
        ):
            async with database.write() as unit:
                await work(unit)
            version = await check(label, version)
        (row,) = await database.fetch(state, {"id": alice})
        assert row.key_count == 0
        (other,) = await database.fetch(state, {"id": bob})
        assert other.key_count == 0


async def _move_and_back(unit: Unit, key_id: str, to: str, back: str) -> None:
    """Give a key to another owner and return it: both owners' versions move, each count
    goes up and down again (the other owner's version is put back, for the checks)."""
    moved = update(ssh_keys).where(ssh_keys.c.id == key_id)
    await unit.run(moved.values(owner_id=to))
    (during,) = await unit.fetch(
        select(owners.c.version, owners.c.key_count).where(owners.c.id == to)
    )
    assert (during.version, during.key_count) == (1, 1)
    await unit.run(moved.values(owner_id=back))
    await unit.run(update(owners).where(owners.c.id == to).values(version=0))


async def test_a_use_is_recorded_once_a_minute(database_url: str) -> None:
    """If a key is used twice in the same minute, then only the first use writes (and
    moves the owner's version), and its lastUsedAt is that minute; a later minute writes."""
    minute = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)
    async with open_database(database_url) as database:
        async with database.write() as unit:
            owner_id = await owner_service.get_or_create(unit, "alice")
        actor = Actor(owner_id=owner_id, api_key_id=None, client="test")
        async with database.write() as unit:
            new = service.prepare("k", ed25519_public_line())
            key_id = (await service.create(unit, actor, new, max_keys=10)).id
        written = []
        for at in (minute + dt.timedelta(seconds=5), minute + dt.timedelta(seconds=50)):
            async with database.write() as unit:
                written.append(await service.record_use(unit, owner_id, key_id, at))
        async with database.read() as unit:
            assert (await service.get(unit, owner_id, key_id)).last_used_at == minute
        async with database.write() as unit:
            later = minute + dt.timedelta(minutes=1, seconds=1)
            written.append(await service.record_use(unit, owner_id, key_id, later))
        async with database.read() as unit:
            stored = await service.get(unit, owner_id, key_id)
    assert written == [True, False, True]
    assert stored.last_used_at == minute + dt.timedelta(minutes=1)


async def test_lock_reads_the_key_count_without_counting_rows(database_url: str) -> None:
    """If an owner has keys, then locking the owner for a create returns their number
    (kept by the database)."""
    async with open_database(database_url) as database:
        async with database.write() as unit:
            owner_id = await owner_service.get_or_create(unit, "alice")
        actor = Actor(owner_id=owner_id, api_key_id=None, client="test")
        for i in range(4):
            async with database.write() as unit:
                new = service.prepare(f"k{i}", ed25519_public_line())
                await service.create(unit, actor, new, max_keys=10)
        async with database.write() as unit:
            assert await owner_service.lock_and_count(unit, owner_id) == 4


def test_every_statement_of_the_services_compiles_for_both_databases() -> None:
    """If the app's modules are imported, then every statement they declare compiles for
    SQLite and PostgreSQL with records that match its columns (the start-up check)."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    import gpucloud.app  # noqa: F401 - imports every service module
    from gpucloud.db.databases import SQLiteUnit
    from gpucloud.db.statements import compile_all

    for dialect in (SQLiteUnit.dialect, PGDialect_asyncpg()):
        assert compile_all(dialect) > 20


async def test_a_reused_read_is_never_older_than_the_last_commit(database_url: str) -> None:
    """If a read may be answered from memory (fetch with reuse), then after another
    connection commits a change, the next such read returns the changed rows, on both
    databases (SQLite answers from memory only while its data version has not moved)."""
    by_id = Statement(select(owners.c.name).where(owners.c.id == bindparam("id")))
    async with open_database(database_url) as database, open_database(database_url) as other:
        async with database.write() as unit:
            owner_id = await owner_service.get_or_create(unit, "before")
        first = await database.fetch(by_id, {"id": owner_id}, reuse=True)
        again = await database.fetch(by_id, {"id": owner_id}, reuse=True)
        async with other.write() as writer:
            await writer.run(update(owners).where(owners.c.id == owner_id).values(name="after"))
        changed = await database.fetch(by_id, {"id": owner_id}, reuse=True)
        async with database.write() as unit:  # this process's own writer, too
            await unit.run(update(owners).where(owners.c.id == owner_id).values(name="mine"))
        mine = await database.fetch(by_id, {"id": owner_id}, reuse=True)
    assert [rows[0].name for rows in (first, again, changed, mine)] == [
        "before",
        "before",
        "after",
        "mine",
    ]


async def test_makedefault_of_an_unknown_key_changes_nothing(database_url: str) -> None:
    """If makedefault names a key the owner does not have, then it raises NotFoundError
    having changed nothing: the owner keeps its default even when the caller goes on and
    commits the unit."""
    async with open_database(database_url) as database:
        async with database.write() as unit:
            owner_id = await owner_service.get_or_create(unit, "alice")
        actor = Actor(owner_id=owner_id, api_key_id=None, client="test")
        async with database.write() as unit:
            first = await service.create(
                unit, actor, service.prepare("k0", ed25519_public_line()), max_keys=10
            )
        async with database.write() as unit:
            with pytest.raises(NotFoundError):
                await service.make_default(unit, actor, "0" * 24)
        async with database.read() as unit:
            keys = await service.owner_keys(unit, owner_id)
        assert [(k.id, k.is_default) for k in keys.keys] == [(first.id, True)]


async def test_a_writer_that_stops_waiting_for_the_commit_leaves_the_others_whole(
    database_url: str, backend: str
) -> None:
    """If one of several concurrent writers is cancelled (its client went away) after its
    block has ended, then the others' writes are committed and answered as usual; on
    SQLite, whose writers share one commit, its own write is committed with theirs."""
    names = [f"writer-{n}" for n in range(5)]
    left = asyncio.Event()

    async def write(name: str) -> None:
        async with database.write() as unit:
            await owner_service.get_or_create(unit, name)
            if name == names[0]:
                left.set()

    async with open_database(database_url) as database:
        tasks = [asyncio.create_task(write(name)) for name in names]
        await left.wait()
        tasks[0].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        stored = await database.fetch(Statement(select(owners.c.name)))
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert outcomes[1:] == [None] * 4
    expected = set(names) if backend == "sqlite" else set(names[1:])
    assert expected <= {row.name for row in stored}
