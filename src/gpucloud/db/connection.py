"""What services need of a database connection, on either database."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import Dialect, Result
from sqlalchemy.sql.base import Executable

from gpucloud.db.prepared import Prepared

if TYPE_CHECKING:  # the asyncio layer is loaded only for PostgreSQL
    from sqlalchemy.ext.asyncio import AsyncConnection


class Connection(Protocol):
    """SQLAlchemy Core statements, awaited; and prepared statements on the fast path."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Result[Any]: ...

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any: ...

    async def fetch(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """The rows of a prepared SELECT, as tuples of converted values."""
        ...

    async def run(self, prepared: Prepared, parameters: Mapping[str, Any]) -> int:
        """Run a prepared INSERT, UPDATE or DELETE; the number of rows it touched."""
        ...


class InlineSQLiteConnection:
    """An SQLite connection whose statements run in the event loop's own thread.

    An indexed SQLite statement takes microseconds, less than handing it to a thread and
    back (what aiosqlite does, twice per statement; docs/decisions.md D20). Nothing here
    waits on a lock: writers hold the write lock before any statement runs
    (`SQLiteDatabase.write`).
    """

    def __init__(self, connection: SyncConnection, raw: sqlite3.Connection) -> None:
        self._connection = connection
        self._raw = raw

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

    async def fetch(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        form = prepared.for_sqlite(self._connection.dialect)
        return form.rows(self._raw.execute(form.sql, form.parameters(parameters)).fetchall())

    async def run(self, prepared: Prepared, parameters: Mapping[str, Any]) -> int:
        form = prepared.for_sqlite(self._connection.dialect)
        return self._raw.execute(form.sql, form.parameters(parameters)).rowcount


class PostgresConnection:
    """SQLAlchemy's asyncio connection over asyncpg; prepared statements run through it."""

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

    async def fetch(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        result = await self._connection.execute(prepared.statement, parameters)  # type: ignore[call-overload]
        return [tuple(row) for row in result]

    async def run(self, prepared: Prepared, parameters: Mapping[str, Any]) -> int:
        result = await self._connection.execute(prepared.statement, parameters)  # type: ignore[call-overload]
        rowcount: int = result.rowcount
        return rowcount
