"""The operator's commands: `gpucloud db …` and `gpucloud api-keys …`.

They call the services directly, on the database of GPUCLOUD_DATABASE_URL. The
database layers are imported inside the commands, so that `gpucloud ssh-keys …` (the
user's CLI, which never touches a database) starts without loading them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from gpucloud.cli import output
from gpucloud.cli.output import print_json, print_table, stderr
from gpucloud.errors import GpuCloudError
from gpucloud.wire import iso_timestamp

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from gpucloud.api_keys.service import APIKeyInfo

T = TypeVar("T")

db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
api_keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def _run(work: Callable[[AsyncConnection], Awaitable[T]], *, write: bool) -> T:
    """Run `work` in one transaction on the configured database, migrating SQLite first."""
    from gpucloud import db, migrate
    from gpucloud.config import Settings

    settings = Settings()
    try:
        is_sqlite = db.normalize_url(settings.database_url).get_backend_name() == "sqlite"
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="GPUCLOUD_DATABASE_URL") from None
    if is_sqlite:
        migrate.upgrade(settings.database_url)

    async def go() -> T:
        database = db.Database(db.create_engine(settings))
        try:
            unit = database.write() if write else database.read()
            async with unit as conn:
                return await work(conn)
        finally:
            await database.dispose()

    try:
        return asyncio.run(go())
    except GpuCloudError as exc:
        output.error(exc.message)
        raise typer.Exit(1) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (safe to repeat, and while old replicas serve).

    Example: GPUCLOUD_DATABASE_URL=postgresql://postgres@127.0.0.1/gpucloud gpucloud db upgrade
    """
    from gpucloud import db, migrate
    from gpucloud.config import Settings

    settings = Settings()
    migrate.upgrade(settings.database_url)
    typer.echo(f"{db.describe(settings.database_url)} is at revision {migrate.head()}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of this package.

    Example: gpucloud db current
    """
    from gpucloud import migrate
    from gpucloud.config import Settings

    settings = Settings()
    revision = migrate.current_sync(settings.database_url)
    typer.echo(f"database: {revision or 'not migrated'}; package: {migrate.head()}")


@api_keys_app.command("create")
def create(
    owner: str = typer.Option(..., help="The owner the key acts for (created if new)."),
    expires_in: str | None = typer.Option(
        None, help="Lifetime, e.g. 90d, 12h, 30m, 30s; no expiry when omitted."
    ),
    if_none: bool = typer.Option(
        False, "--if-none", help="Only if the owner has no usable key yet (for set-up scripts)."
    ),
) -> None:
    """Create an API key and print its secret, alone, on stdout (shown only once).

    Example: gpucloud api-keys create --owner alice --expires-in 90d
    """
    from gpucloud.api_keys import service as api_keys
    from gpucloud.db import utcnow

    lifetime = None
    if expires_in is not None:
        try:
            lifetime = api_keys.parse_duration(expires_in)
        except GpuCloudError as exc:
            raise typer.BadParameter(exc.message, param_hint="--expires-in") from None

    async def work(conn: AsyncConnection) -> tuple[str, APIKeyInfo] | None:
        if if_none:
            now = utcnow()
            existing = await api_keys.list_keys(conn, owner=owner)
            if any(info.state(now) == "active" for info in existing):
                return None
        return await api_keys.create(conn, owner=owner, expires_in=lifetime)

    created = _run(work, write=True)
    if created is None:
        stderr.print(f"Owner {owner!r} already has an active API key; none created.")
        return
    secret, info = created
    expiry = f", expires {iso_timestamp(info.expires_at)}" if info.expires_at else ""
    stderr.print(
        f"Created API key {info.id} for owner {info.owner!r}{expiry}. "
        "Store the secret now: it is not shown again.",
        highlight=False,
    )
    typer.echo(secret)


@api_keys_app.command("list")
def list_(
    owner: str | None = typer.Option(None, help="Only this owner's keys."),
    output: str = typer.Option("table", help="table or json."),
) -> None:
    """List API keys (never their secrets).

    Example: gpucloud api-keys list --owner alice
    """
    from gpucloud.api_keys import service as api_keys
    from gpucloud.db import utcnow

    async def work(conn: AsyncConnection) -> list[APIKeyInfo]:
        return await api_keys.list_keys(conn, owner=owner)

    keys = _run(work, write=False)
    now = utcnow()
    if output == "json":
        print_json([_as_json(k, now) for k in keys])
        return
    print_table(
        ("id", "owner", "prefix", "created", "expires", "last used", "state"),
        (
            (
                k.id,
                k.owner,
                k.prefix + "…",
                _short(k.created_at),
                _short(k.expires_at),
                _short(k.last_used_at),
                k.state(now),
            )
            for k in keys
        ),
    )


@api_keys_app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="The key's id (from `list`) or its secret."),
) -> None:
    """Revoke an API key; its next request gets 403.

    Example: gpucloud api-keys revoke 6650f1c2a1b2c3d4e5f60718
    """
    from gpucloud.api_keys import service as api_keys

    async def work(conn: AsyncConnection) -> APIKeyInfo:
        return await api_keys.revoke(conn, key)

    info = _run(work, write=True)
    stderr.print(f"Revoked API key {info.id} ({info.prefix}…) of owner {info.owner!r}.")


def _short(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _as_json(info: APIKeyInfo, now: dt.datetime) -> dict[str, object]:
    def ts(value: dt.datetime | None) -> str | None:
        return iso_timestamp(value) if value else None

    return {
        "id": info.id,
        "owner": info.owner,
        "prefix": info.prefix,
        "createdAt": ts(info.created_at),
        "expiresAt": ts(info.expires_at),
        "lastUsedAt": ts(info.last_used_at),
        "revokedAt": ts(info.revoked_at),
        "state": info.state(now),
    }
