"""`gpucloud serve`: run the API server (`--ephemeral`: a throw-away one, for tests)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

log = logging.getLogger("gpucloud.serve")

# The owner of the API key that `serve --ephemeral` prints.
EPHEMERAL_OWNER = "ephemeral"


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
    ephemeral: bool = typer.Option(
        False,
        "--ephemeral",
        help="For tests: serve a new SQLite database in a temporary directory (removed at "
        "exit), print an API key on stdout, and turn on the test controls (docs/testing.md).",
    ),
    control_token_file: str | None = typer.Option(
        None,
        help="With --ephemeral: write the test controls' token to this file (mode 0600) "
        "instead of the temporary directory; removed at exit too.",
    ),
) -> None:
    """Start the API server.

    Example: GPUCLOUD_DATABASE_URL=sqlite:///gpucloud.db gpucloud serve --port 8000
    Example, for tests: gpucloud serve --ephemeral --port 8123 > api-key.txt
    """
    import os
    import sys

    from gpucloud import db, migrate
    from gpucloud.cli.admin import load_settings
    from gpucloud.ops import logs

    if control_token_file is not None and not ephemeral:
        raise typer.BadParameter(
            "only a server started with --ephemeral has test controls",
            param_hint="--control-token-file",
        )
    if ephemeral and workers != 1:
        raise typer.BadParameter(
            "an ephemeral server runs in one process (its faults and state live there)",
            param_hint="--workers",
        )
    extra: list[str] = []
    if ephemeral:
        extra = _prepare_ephemeral(Path(control_token_file) if control_token_file else None)
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    try:
        where = db.describe(settings.database_url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="GPUCLOUD_DATABASE_URL") from None
    is_sqlite = db.normalize_url(settings.database_url).get_backend_name() == "sqlite"
    if (migrate_first or is_sqlite) and not ephemeral:  # an ephemeral one is migrated
        migrate.upgrade(settings.database_url)
    log.info("gpucloud serving on http://%s:%d with %s", host, port, where)
    typer.echo(f"Database: {where}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the server process: see gpucloud.server for why a fresh interpreter.
    args = ["--host", host, "--port", str(port), "--workers", str(workers), *extra]
    os.execv(sys.executable, [sys.executable, "-m", "gpucloud.server", *args])  # noqa: S606 - our own interpreter and module


def _prepare_ephemeral(control_token_file: Path | None) -> list[str]:
    """Make the temporary directory, its migrated database, an API key (printed) and the
    control token (written to a file); returns the server's extra arguments.

    GPUCLOUD_DATABASE_URL is set to the new database for the rest of this process and the
    server it becomes. Whatever fails here removes the directory again.
    """
    import os
    import secrets
    import shutil
    import tempfile

    from gpucloud.api_keys import service as api_keys
    from gpucloud.cli.admin import _run
    from gpucloud.cli.output import stderr

    directory = Path(tempfile.mkdtemp(prefix="gpucloud-ephemeral-"))  # mode 0700
    token_file = control_token_file or directory / "control-token"
    try:
        os.environ["GPUCLOUD_DATABASE_URL"] = f"sqlite:///{directory / 'gpucloud.db'}"
        # A database removed at exit need not survive a power loss: no fsync per commit.
        os.environ.setdefault("GPUCLOUD_SQLITE_SYNCHRONOUS", "NORMAL")
        secret, _ = _run(
            lambda unit: api_keys.create(unit, owner=EPHEMERAL_OWNER, client="cli"), write=True
        )
        _write_private(token_file, secrets.token_urlsafe(32))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    stderr.print(
        f"Ephemeral server: its database is in {directory}, removed when the server stops. "
        f"The API key of owner {EPHEMERAL_OWNER!r} is on stdout. The test controls "
        f"(/_gpucloud/…, docs/testing.md) need the token in {token_file}.",
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(secret)
    return ["--ephemeral-dir", str(directory), "--control-token-file", str(token_file)]


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by this user only, never through a symlink."""
    import os

    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(descriptor, 0o600)
        file.write(text + "\n")
