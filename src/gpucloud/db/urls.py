"""Database URLs as users write them, and as SQLAlchemy's drivers want them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import URL, make_url


def normalize_url(url: str) -> URL:
    """The async SQLAlchemy URL for a user-given `sqlite://` or `postgresql://` URL.

    Raises ValueError for any other database.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}; use sqlite:///… or postgresql://…")


def sqlite_path(url: URL) -> Path | None:
    """The file of an SQLite URL, or None for an in-memory or non-SQLite database."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def describe(url: str) -> str:
    """Where the data lives, for the start-up line: a file path or a URL without password."""
    parsed = normalize_url(url)
    path = sqlite_path(parsed)
    if path is not None:
        return f"SQLite file {path}"
    return f"PostgreSQL {parsed.render_as_string(hide_password=True).split('://', 1)[1]}"
