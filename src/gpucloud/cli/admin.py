"""The operator's commands: `gpucloud db …` and `gpucloud api-keys …`.

They call the services directly, on the database of GPUCLOUD_DATABASE_URL. The
database layers are imported inside the commands, so that `gpucloud ssh-keys …` (the
user's CLI, which never touches a database) starts without loading them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from gpucloud.cli import output
from gpucloud.cli.output import print_json, print_table, stderr
from gpucloud.errors import GpuCloudError
from gpucloud.wire import iso_timestamp

if TYPE_CHECKING:
    from gpucloud.api_keys.service import APIKeyInfo
    from gpucloud.audit.service import AuditEntry
    from gpucloud.config import Settings
    from gpucloud.db import Unit

T = TypeVar("T")

db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
api_keys_app = typer.Typer(help="Create, list, rotate and revoke API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Read the audit log.")


def load_settings() -> Settings:
    """The settings of the environment; a wrong variable ends the command with its message."""
    from gpucloud.config import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None


def _run(work: Callable[[Unit], Awaitable[T]], *, write: bool) -> T:
    """Run `work` in one transaction on the configured database, migrating SQLite first."""
    from gpucloud import db, migrate

    settings = load_settings()
    try:
        is_sqlite = db.normalize_url(settings.database_url).get_backend_name() == "sqlite"
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="GPUCLOUD_DATABASE_URL") from None
    if is_sqlite:
        migrate.upgrade(settings.database_url)

    async def go() -> T:
        database = db.create_database(settings)
        try:
            unit = database.write() if write else database.read()
            async with unit as opened:
                return await work(opened)
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

    settings = load_settings()
    migrate.upgrade(settings.database_url)
    typer.echo(f"{db.describe(settings.database_url)} is at revision {migrate.head()}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of this package.

    Example: gpucloud db current
    """
    from gpucloud import migrate

    settings = load_settings()
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
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="ssh-keys (everything, the default) or authorized-keys (only the "
            "authorized_keys file, for instances); may be repeated."
        ),
    ] = None,
) -> None:
    """Create an API key and print its secret, alone, on stdout (shown only once).

    Example: gpucloud api-keys create --owner alice --expires-in 90d
    Example: gpucloud api-keys create --owner alice --scope authorized-keys
    """
    from gpucloud.api_keys import service as api_keys
    from gpucloud.db import utcnow

    lifetime = _duration(expires_in, "--expires-in")
    try:
        scopes = api_keys.checked_scopes(scope or [api_keys.SSH_KEYS])
    except GpuCloudError as exc:
        raise typer.BadParameter(exc.message, param_hint="--scope") from None

    async def work(unit: Unit) -> tuple[str, APIKeyInfo] | None:
        if if_none:
            now = utcnow()
            existing = await api_keys.list_keys(unit, owner=owner)
            if any(info.state(now) == "active" for info in existing):
                return None
        return await api_keys.create(unit, owner=owner, expires_in=lifetime, scopes=scopes)

    created = _run(work, write=True)
    if created is None:
        stderr.print(f"Owner {owner!r} already has an active API key; none created.")
        return
    secret, info = created
    expiry = f", expires {iso_timestamp(info.expires_at)}" if info.expires_at else ""
    stderr.print(
        f"Created API key {info.id} for owner {info.owner!r}, scopes {_scopes(info.scopes)}"
        f"{expiry}. "
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

    async def work(unit: Unit) -> list[APIKeyInfo]:
        return await api_keys.list_keys(unit, owner=owner)

    keys = _run(work, write=False)
    now = utcnow()
    if output == "json":
        print_json([_as_json(k, now) for k in keys])
        return
    print_table(
        ("id", "owner", "prefix", "scopes", "created", "expires", "last used", "state"),
        (
            (
                k.id,
                k.owner,
                k.prefix + "…",
                _scopes(k.scopes),
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

    async def work(unit: Unit) -> APIKeyInfo:
        return await api_keys.revoke(unit, key)

    info = _run(work, write=True)
    stderr.print(f"Revoked API key {info.id} ({info.prefix}…) of owner {info.owner!r}.")


@api_keys_app.command("rotate")
def rotate(
    key: str = typer.Argument(..., help="The key's id (from `list`) or its secret."),
    grace: str | None = typer.Option(
        None, help="Let the old key work this much longer (e.g. 24h); revoked at once if omitted."
    ),
    expires_in: str | None = typer.Option(None, help="Lifetime of the new key, e.g. 90d."),
) -> None:
    """Replace an API key: print the new secret alone on stdout, end the old one.

    Example: gpucloud api-keys rotate 6650f1c2a1b2c3d4e5f60718 --grace 24h
    """
    from gpucloud.api_keys import service as api_keys

    grace_period = _duration(grace, "--grace")
    lifetime = _duration(expires_in, "--expires-in")

    async def work(unit: Unit) -> tuple[str, APIKeyInfo, APIKeyInfo]:
        return await api_keys.rotate(unit, key, grace=grace_period, expires_in=lifetime)

    secret, new, old = _run(work, write=True)
    ending = (
        f"works until {iso_timestamp(old.expires_at)}"
        if grace_period and old.expires_at
        else "is revoked"
    )
    stderr.print(
        f"Created API key {new.id} for owner {new.owner!r}; the old key {old.id} {ending}. "
        "Store the secret now: it is not shown again."
    )
    typer.echo(secret)


@audit_app.callback(invoke_without_command=True)
def audit(
    owner: str | None = typer.Option(None, help="Only this owner's events."),
    since: str | None = typer.Option(
        None, help="Only events this recent (e.g. 24h, 7d) or since an ISO date-time."
    ),
    limit: int = typer.Option(1000, min=1, help="At most this many events (oldest first)."),
    output: str = typer.Option("table", help="table or json."),
) -> None:
    """Print the audit log: every change to SSH keys and API keys, never a secret.

    Example: gpucloud audit --owner alice --since 7d
    """
    from gpucloud.audit import service as audit_service
    from gpucloud.db import utcnow

    start = _since(since, utcnow())

    async def work(unit: Unit) -> list[AuditEntry]:
        return await audit_service.query(unit, owner=owner, since=start, limit=limit)

    entries = _run(work, write=False)
    if output == "json":
        print_json(
            [
                {
                    "id": e.id,
                    "at": iso_timestamp(e.at),
                    "owner": e.owner,
                    "action": e.action,
                    "apiKeyId": e.api_key_id,
                    "sshKeyId": e.ssh_key_id,
                    "fingerprint": e.fingerprint,
                    "name": e.name,
                    "requestId": e.request_id,
                    "client": e.client,
                    "scopes": e.scopes.split() if e.scopes else None,
                }
                for e in entries
            ]
        )
        return
    print_table(
        (
            "at",
            "owner",
            "action",
            "ssh key",
            "name",
            "fingerprint",
            "api key",
            "scopes",
            "client",
            "request",
        ),
        (
            (
                iso_timestamp(e.at),
                e.owner,
                e.action,
                e.ssh_key_id or "-",
                e.name or "-",
                e.fingerprint or "-",
                e.api_key_id or "-",
                _scopes(e.scopes) if e.scopes else "-",
                e.client or "-",
                e.request_id or "-",
            )
            for e in entries
        ),
    )


def _duration(text: str | None, option: str) -> dt.timedelta | None:
    from gpucloud.api_keys.service import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except GpuCloudError as exc:
        raise typer.BadParameter(exc.message, param_hint=option) from None


def _since(text: str | None, now: dt.datetime) -> dt.datetime | None:
    if text is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        duration = _duration(text, "--since")
        return now - duration if duration else None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _scopes(stored: str) -> str:
    return ",".join(stored.split())


def _short(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _as_json(info: APIKeyInfo, now: dt.datetime) -> dict[str, object]:
    def ts(value: dt.datetime | None) -> str | None:
        return iso_timestamp(value) if value else None

    return {
        "id": info.id,
        "owner": info.owner,
        "prefix": info.prefix,
        "scopes": info.scopes.split(),
        "createdAt": ts(info.created_at),
        "expiresAt": ts(info.expires_at),
        "lastUsedAt": ts(info.last_used_at),
        "revokedAt": ts(info.revoked_at),
        "state": info.state(now),
    }
