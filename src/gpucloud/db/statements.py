"""Statements: written with SQLAlchemy Core, compiled once per database, run on its driver.

There is one way to run SQL, the same on SQLite and PostgreSQL:

1. A service writes a SQLAlchemy Core statement (`select`, `insert`, `update`, `delete`)
   and wraps it in a `Statement`, usually once, at import.
2. The first time it runs on a database, SQLAlchemy compiles it for that database's
   dialect: the SQL text, the order of its parameters, and, for every parameter and
   result column, the conversion SQLAlchemy itself would apply (its types' bind and
   result processors). `Compiled` keeps all of that.
3. A unit of work (`gpucloud.db.databases`) sends the SQL text and the converted
   parameters to the driver (sqlite3 or asyncpg) and hands the driver's rows back to
   `Compiled.records`, which converts each value and builds records **by column name**:
   a statement declares the record type it returns (a named tuple), and the columns it
   selects must be exactly that record's fields, in any order — checked when the
   statement is compiled, which `Database` does for every statement at start-up.

SQLAlchemy's own execution layer (result objects, row proxies, events) is not used: for
the indexed single-row statements of this API it costs several times what the database
takes (docs/decisions.md D20). What SQLAlchemy is kept for — building statements,
compiling them and converting types — is exactly what both databases share.

An INSERT without `.values()` is compiled for the columns it is given, so that a column
added later with a server default needs no change to the code that inserts rows.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast, overload

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.sql.selectable import SelectBase

Convert = Callable[[Any], Any]
R = TypeVar("R")

# Every Statement made at import time, so that a database can compile them all when it
# is created: a statement whose columns do not match its record fails at start-up.
_ALL: weakref.WeakSet[Statement[Any]] = weakref.WeakSet()


class StatementError(Exception):
    """A statement that cannot run as declared (a programming error, found at start-up)."""


@dataclass(frozen=True, slots=True)
class Compiled(Generic[R]):
    """A statement as one database runs it."""

    sql: str
    # (name, conversion) of each positional parameter, in the order the SQL uses them.
    parameters: tuple[tuple[str, Convert | None], ...]
    # Values written into the statement itself (`.values(is_default=False)`, LIMIT 1).
    fixed: Mapping[str, Any]
    # For each field of the record, in the record's order: the index of its column in
    # the driver's row, and its conversion.
    fields: tuple[tuple[int, Convert | None], ...]
    make: Callable[..., R]
    returns_rows: bool

    def arguments(self, values: Mapping[str, Any] | None) -> list[Any]:
        """The driver's positional arguments for these named values."""
        if self.fixed:
            values = {**self.fixed, **(values or {})}
        elif values is None:
            values = {}
        try:
            return [
                values[name] if convert is None else convert(values[name])
                for name, convert in self.parameters
            ]
        except KeyError as exc:
            raise StatementError(f"no value for parameter {exc.args[0]!r} of: {self.sql}") from None

    def records(self, rows: Iterable[Sequence[Any]]) -> list[R]:
        """The driver's rows as records, each value converted as SQLAlchemy would."""
        make = self.make
        fields = self.fields
        records = []
        for row in rows:
            values = []
            for i, convert in fields:
                value = row[i]
                # SQLAlchemy's result processors turn NULL into None: it needs no call.
                if convert is not None and value is not None:
                    value = convert(value)
                values.append(value)
            records.append(make(*values))
        return records


class Statement(Generic[R]):
    """A SQLAlchemy Core statement, compiled once per database.

    `record` is the named tuple each result row becomes; its fields must be exactly the
    names of the selected (or RETURNING) columns. Without it, rows are named tuples of
    the columns, so that they are still read by name.
    """

    @overload
    def __init__(self: Statement[Any], statement: Executable) -> None: ...
    @overload
    def __init__(self, statement: Executable, record: type[R]) -> None: ...

    def __init__(self, statement: Executable, record: type[R] | None = None) -> None:
        self.statement: Any = statement
        self.record = record
        # An INSERT without values of its own inserts the columns it is given, and is
        # compiled once for each set of columns.
        self.inserts_given_columns = isinstance(statement, Insert) and not statement._values
        self._forms: dict[object, Compiled[R]] = {}
        _ALL.add(self)

    def compiled(self, dialect: Dialect, values: Mapping[str, Any] | None = None) -> Compiled[R]:
        """Its form for `dialect` (compiled at first use, then kept)."""
        key: object = dialect.name
        if self.inserts_given_columns:
            key = (dialect.name, tuple(sorted(values or ())))
        form = self._forms.get(key)
        if form is None:
            columns = key[1] if isinstance(key, tuple) else ()
            form = self._forms[key] = self._compile(dialect, columns)
        return form

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> Compiled[R]:
        statement = self.statement
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
        assert isinstance(compiled, SQLCompiler)
        if getattr(compiled, "insert_prefetch", None):
            # Python-side column defaults would need SQLAlchemy's execution layer.
            raise StatementError(
                f"columns {[c.name for c in compiled.insert_prefetch]} have Python-side "
                "defaults; give them a server_default instead"
            )
        names = tuple(compiled.positiontup or ())
        if dialect.paramstyle == "numeric_dollar":
            # PostgreSQL's $1, $2 name each parameter once, however often it is used.
            names = tuple(dict.fromkeys(names))
        parameters = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        )
        fixed = {
            name: compiled.binds[name].effective_value
            for name in names
            if not compiled.binds[name].required
        }
        columns = _result_columns(statement)
        make, fields = self._record_fields(columns, dialect)
        return Compiled(
            sql=compiled.string,
            parameters=parameters,
            fixed=fixed,
            fields=fields,
            make=make,
            returns_rows=bool(columns),
        )

    def _record_fields(
        self, columns: list[tuple[str, Any]], dialect: Dialect
    ) -> tuple[Callable[..., R], tuple[tuple[int, Convert | None], ...]]:
        names = [name for name, _ in columns]
        if len(set(names)) != len(names):
            raise StatementError(f"columns selected twice under one name: {names}")
        record = self.record
        if record is None:
            if not names:
                return cast(Callable[..., R], tuple), ()
            record = cast(type[R], namedtuple("Row", names))
        wanted: tuple[str, ...] = record._fields  # type: ignore[attr-defined]
        if set(wanted) != set(names):
            raise StatementError(
                f"{record.__name__} has fields {sorted(wanted)} but the statement selects "
                f"{sorted(names)}"
            )
        index = {name: i for i, name in enumerate(names)}
        converts = {
            name: type_.dialect_impl(dialect).result_processor(dialect, None)
            for name, type_ in columns
        }
        fields = tuple((index[name], converts[name]) for name in wanted)
        return cast(Callable[..., R], record), fields


def _result_columns(statement: Any) -> list[tuple[str, Any]]:
    """(name, type) of each column a statement returns, in order."""
    if isinstance(statement, SelectBase):
        columns: Sequence[ColumnElement[Any]] = list(statement.selected_columns)
    elif isinstance(statement, UpdateBase):
        columns = list(statement.exported_columns) if statement._returning else []
    else:
        columns = []
    return [(str(column.key), column.type) for column in columns]


def compile_all(dialect: Dialect) -> int:
    """Compile every statement made so far for `dialect`; the number compiled.

    Raises StatementError for the first one that cannot run as declared.
    """
    statements = list(_ALL)
    for statement in statements:
        if not statement.inserts_given_columns:
            statement.compiled(dialect)
    return len(statements)
