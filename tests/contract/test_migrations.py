"""Migrations are the schema: they match the models, on both databases alike."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, pool
from sqlalchemy.ext.asyncio import create_async_engine

from gpucloud.db import normalize_url
from gpucloud.models import metadata
from tests.support import databases


async def _with_sync_connection(url: str, work: Any) -> Any:
    engine = create_async_engine(normalize_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _shape(connection: Connection) -> dict[str, Any]:
    """Tables, columns (name, nullability, generic type), keys and indexes, by name."""
    inspector = inspect(connection)
    shape: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        shape[table] = {
            "columns": [
                (
                    c["name"],
                    c["nullable"],
                    type(c["type"]).__name__.upper().replace("VARCHAR", "STRING"),
                )
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                # PostgreSQL reports a unique constraint's own index as an index too.
                if not i.get("duplicates_constraint")
            ),
        }
    return shape


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    """If the migrations run on an empty database, then Alembic finds no difference from
    the models (a model changed without a migration fails here)."""
    assert await _with_sync_connection(database_url, _drift) == []


async def test_sqlite_and_postgresql_get_the_same_schema(
    sqlite_template: databases.SQLiteTemplate, request: pytest.FixtureRequest
) -> None:
    """If the same migrations run on SQLite and on PostgreSQL, then both have the same
    tables, columns, keys and indexes."""
    postgres: databases.PostgresTemplate = request.getfixturevalue("postgres_template")
    on_sqlite = await _with_sync_connection(f"sqlite:///{sqlite_template.path}", _shape)
    on_postgres = await _with_sync_connection(databases.postgres_url(postgres.name), _shape)
    assert on_sqlite.keys() == on_postgres.keys()
    for table in on_sqlite:
        for part in ("pk", "unique", "indexes"):
            assert on_sqlite[table][part] == on_postgres[table][part], (table, part)
        assert [c[:2] for c in on_sqlite[table]["columns"]] == [
            c[:2] for c in on_postgres[table]["columns"]
        ], table
