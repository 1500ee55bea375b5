"""Prepared statements: written once with SQLAlchemy, run on SQLite's driver directly.

SQLAlchemy's per-execution machinery (parameter processing, result metadata, row
objects, events) costs several times what SQLite itself takes for an indexed statement:
66 µs against 16 µs for the list query (docs/decisions.md D20). A `Prepared` statement
is compiled once per dialect; on SQLite its SQL text runs on the sqlite3 connection,
each parameter and column converted as its SQLAlchemy type would; on PostgreSQL it runs
through SQLAlchemy and asyncpg unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.selectable import SelectBase

from gpucloud.db.schema import UTCDateTime

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class SQLiteForm:
    """A statement as SQLite runs it: SQL text, parameter order and conversions."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[Convert | None, ...]
    columns: tuple[Convert | None, ...]
    # Values written into the statement itself (`.values(is_default=False)`, LIMIT 1).
    fixed: Mapping[str, Any]

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        if self.fixed:
            values = {**self.fixed, **values}
        return [
            values[name] if convert is None else convert(values[name])
            for name, convert in zip(self.names, self.binds, strict=True)
        ]

    def rows(self, raw: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not any(self.columns):
            return raw
        return [
            tuple(
                v if convert is None else convert(v)
                for v, convert in zip(row, self.columns, strict=True)
            )
            for row in raw
        ]


class Prepared:
    """A statement compiled once, for `Connection.fetch` (SELECT) and `.run` (DML)."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._sqlite: SQLiteForm | None = None

    def for_sqlite(self, dialect: Dialect) -> SQLiteForm:
        """Its SQLite form (compiled at first use)."""
        if self._sqlite is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            names = tuple(compiled.positiontup or ())
            binds = tuple(compiled.binds[name].type.bind_processor(dialect) for name in names)
            columns: tuple[Convert | None, ...] = ()
            if isinstance(self.statement, SelectBase):
                columns = tuple(
                    _SQLITE_COLUMNS.get(type(column.type))
                    for column in self.statement.selected_columns
                )
            fixed = {
                name: compiled.binds[name].effective_value
                for name in names
                if not compiled.binds[name].required
            }
            self._sqlite = SQLiteForm(compiled.string, names, binds, columns, fixed)
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


_SQLITE_COLUMNS: dict[type[Any], Convert] = {UTCDateTime: _sqlite_datetime, Boolean: _sqlite_bool}
