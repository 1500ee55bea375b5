"""`gpucloud serve`: run the API server."""

from __future__ import annotations

import logging

import typer

log = logging.getLogger("gpucloud.serve")


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Server processes (all share the database)."),
    migrate_first: bool = typer.Option(
        True,
        "--migrate/--no-migrate",
        help="Bring the schema up to date before serving; --no-migrate for PostgreSQL "
        "replicas when `gpucloud db upgrade` runs once per release.",
    ),
) -> None:
    """Start the API server.

    Example: GPUCLOUD_DATABASE_URL=sqlite:///gpucloud.db gpucloud serve --port 8000
    """
    import os
    import sys

    from gpucloud import db, migrate
    from gpucloud.cli.admin import load_settings
    from gpucloud.ops import logs

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    try:
        where = db.describe(settings.database_url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="GPUCLOUD_DATABASE_URL") from None
    is_sqlite = db.normalize_url(settings.database_url).get_backend_name() == "sqlite"
    if migrate_first or is_sqlite:
        migrate.upgrade(settings.database_url)
    log.info("gpucloud serving on http://%s:%d with %s", host, port, where)
    typer.echo(f"Database: {where}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the server process: see gpucloud.server for why a fresh interpreter.
    args = ["--host", host, "--port", str(port), "--workers", str(workers)]
    os.execv(sys.executable, [sys.executable, "-m", "gpucloud.server", *args])  # noqa: S606 - our own interpreter and module
