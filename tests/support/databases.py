"""Test databases: a fresh SQLite file or PostgreSQL database per test, built by migrations.

The schema is migrated once per session into a template (a file for SQLite, a
template database for PostgreSQL); each test gets a copy, so tests never share state
and the suite does not pay for Alembic on every test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

import asyncpg

from gpucloud import migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "GPUCLOUD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("GPUCLOUD_TEST_REQUIRE_POSTGRES") == "1"
TEST_DB_PREFIX = "gpucloud_test_"


def _run(coro_factory):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_factory())


def postgres_reachable() -> str | None:
    """None when the test PostgreSQL server answers, else why not."""

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
        await conn.close()

    try:
        _run(probe)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable ({exc})"
    return None


def postgres_url(database: str) -> str:
    """The URL of `database` on the test server."""
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def create_postgres_database(template: str | None = None) -> str:
    """Create an empty (or templated) database; returns its name."""
    name = TEST_DB_PREFIX + secrets.token_hex(6)

    async def create() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            clause = f" TEMPLATE {template}" if template else ""
            await conn.execute(f"CREATE DATABASE {name}{clause}")
        finally:
            await conn.close()

    _run(create)
    return name


def drop_postgres_database(name: str) -> None:
    """Drop a test database, disconnecting whatever still uses it."""

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    _run(drop)


class SQLiteTemplate:
    """A migrated SQLite file that each test copies."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"
        migrate.upgrade(f"sqlite:///{self.path}")

    def copy_to(self, directory: Path) -> str:
        target = directory / "gpucloud.db"
        shutil.copyfile(self.path, target)
        return f"sqlite:///{target}"


class PostgresTemplate:
    """A migrated PostgreSQL database that each test clones (CREATE DATABASE … TEMPLATE)."""

    def __init__(self) -> None:
        self.name = create_postgres_database()
        migrate.upgrade(postgres_url(self.name))

    def clone(self) -> str:
        return create_postgres_database(template=self.name)

    def drop(self) -> None:
        drop_postgres_database(self.name)
