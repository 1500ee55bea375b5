"""The database: SQLite or PostgreSQL, one way to run statements on both, and units of work.

Modules: `schema` (the tables' metadata, timestamps, ids), `urls`, `statements` (a Core statement
compiled once per database, records built by name), `databases` (the units of work).
"""

from gpucloud.db.databases import (
    Database,
    IntegrityError,
    PostgresDatabase,
    SQLiteDatabase,
    Unit,
    create_database,
)
from gpucloud.db.schema import NAMING_CONVENTION, UTCDateTime, metadata, new_id, utcnow
from gpucloud.db.statements import Statement, StatementError
from gpucloud.db.urls import describe, normalize_url, sqlite_path

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "IntegrityError",
    "PostgresDatabase",
    "SQLiteDatabase",
    "Statement",
    "StatementError",
    "UTCDateTime",
    "Unit",
    "create_database",
    "describe",
    "metadata",
    "new_id",
    "normalize_url",
    "sqlite_path",
    "utcnow",
]
