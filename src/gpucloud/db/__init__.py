"""The database: SQLite or PostgreSQL, and the unit of work services run in.

Services write SQLAlchemy Core statements against a `Connection`; the hottest ones are
`Prepared` (compiled once, run on SQLite's driver directly). Modules:
`schema` (base, timestamps, ids), `urls`, `prepared`, `connection`, `databases`.
"""

from gpucloud.db.connection import Connection, InlineSQLiteConnection, PostgresConnection
from gpucloud.db.databases import (
    INTEGRITY_ERRORS,
    Database,
    PostgresDatabase,
    SQLiteDatabase,
    create_database,
    is_outage,
)
from gpucloud.db.prepared import Prepared
from gpucloud.db.schema import NAMING_CONVENTION, Base, UTCDateTime, new_id, utcnow
from gpucloud.db.urls import describe, normalize_url, sqlite_path

__all__ = [
    "INTEGRITY_ERRORS",
    "NAMING_CONVENTION",
    "Base",
    "Connection",
    "Database",
    "InlineSQLiteConnection",
    "PostgresConnection",
    "PostgresDatabase",
    "Prepared",
    "SQLiteDatabase",
    "UTCDateTime",
    "create_database",
    "describe",
    "is_outage",
    "new_id",
    "normalize_url",
    "sqlite_path",
    "utcnow",
]
