"""Migrations are the schema: they match the models, on both databases alike."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from gpucloud import migrate
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


def _state_before_0004(connection: Connection) -> None:
    connection.exec_driver_sql(
        "INSERT INTO owners (id, name, created_at) VALUES "
        "('a00000000000000000000000', 'alice', CURRENT_TIMESTAMP)"
    )
    connection.execute(
        text(
            "INSERT INTO api_keys (id, owner_id, secret_digest, prefix, created_at) VALUES "
            "('b00000000000000000000000', 'a00000000000000000000000', :digest, 'gck_x', "
            "CURRENT_TIMESTAMP)"
        ),
        {"digest": bytes(32)},
    )
    connection.exec_driver_sql(
        "INSERT INTO ssh_keys (owner_id, id, name, public_key, key_type, key_bits, "
        "fingerprint_sha256, fingerprint_md5, is_default, created_at, updated_at) VALUES "
        "('a00000000000000000000000', 'c00000000000000000000000', 'k', 'ssh-ed25519 AAAA', "
        "'ssh-ed25519', 256, 'SHA256:x', 'MD5:x', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    connection.commit()


def _after_0004(connection: Connection) -> dict[str, Any]:
    scopes = connection.exec_driver_sql("SELECT scopes FROM api_keys").scalar_one()
    before = connection.exec_driver_sql("SELECT version FROM owners").scalar_one()
    connection.exec_driver_sql("UPDATE ssh_keys SET expires_at = CURRENT_TIMESTAMP")
    after = connection.exec_driver_sql("SELECT version, key_count FROM owners").one()
    return {"scopes": scopes, "moved": after[0] > before, "key_count": after[1]}


def test_0004_gives_old_api_keys_the_ssh_keys_scope_and_keeps_the_triggers(
    backend: str, tmp_path: Path
) -> None:
    """If a database of the previous release (0003) holding an API key and an SSH key is
    upgraded, then the API key has the scope ssh-keys, and a change of the SSH key's
    expiry still moves its owner's version (SQLite's triggers survived the new columns)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        name = None
    else:
        name = databases.create_postgres_database()
        url = databases.postgres_url(name)
    try:
        migrate.upgrade(url, "0003")
        asyncio.run(_with_sync_connection(url, _state_before_0004))
        migrate.upgrade(url)
        state = asyncio.run(_with_sync_connection(url, _after_0004))
    finally:
        if name is not None:
            databases.drop_postgres_database(name)
    assert state == {"scopes": "ssh-keys", "moved": True, "key_count": 1}
