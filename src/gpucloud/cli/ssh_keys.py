"""`gpucloud ssh-keys …`: list, show, add, rename, expire, make-default, delete, import,
export.

A thin shell over `gpucloud.client`: each command finds the key the user named (by
name, id or fingerprint), makes one or two client calls, and prints the result, as a
table for people or as JSON (the API's own objects) for scripts. Public keys are checked
with `gpucloud.pubkey` before anything is sent, so that a private key never leaves the
machine. The client and the parser are imported when a command runs, not at start-up.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from gpucloud.cli import output
from gpucloud.cli.user import (
    ApiKeyOption,
    ApiUrlOption,
    Connection,
    ProfileOption,
    fail,
    session,
)

if TYPE_CHECKING:
    from gpucloud.client import Client, SSHKey

app = typer.Typer(
    help="Manage the SSH keys that your new instances trust.\n\n"
    "Name a key by its name, id or fingerprint. Example: gpucloud ssh-keys list",
    no_args_is_help=True,
)

# Where `add` looks when no file is named, in this order (as ssh does).
DEFAULT_KEY_FILES = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
# Far more than any public key or authorized_keys file; stops a wrong file early.
MAX_FILE_BYTES = 4 * 1024 * 1024


class OutputFormat(enum.StrEnum):
    """How results are printed."""

    table = "table"
    json = "json"


def _complete_key(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of KEY: the names of your keys (nothing if the API cannot say)."""
    try:
        connection = Connection(
            api_key=ctx.params.get("api_key"),
            api_url=ctx.params.get("api_url"),
            profile=ctx.params.get("profile"),
        )
        from gpucloud.client import Client

        config = connection.resolve()
        if config.api_key is None:
            return []
        with Client(
            api_key=config.api_key, base_url=config.api_url, timeout=3, max_retries=0
        ) as client:
            names = [key.name for key in client.list_ssh_keys()]
    except (Exception, typer.Exit):  # completion must never print an error into the shell
        return []
    return [name for name in names if name.startswith(incomplete)]


KeyArgument = Annotated[
    str,
    typer.Argument(
        metavar="KEY",
        help="The key's name, id, or fingerprint (SHA256:… or MD5:…).",
        autocompletion=_complete_key,
        show_default=False,
    ),
]
OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="table for people, json for scripts."),
]


@app.command("list")
def list_(
    output_format: OutputOption = OutputFormat.table,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """List your SSH keys, oldest first; * marks the default key.

    Example: gpucloud ssh-keys list --output json
    """
    with session(Connection(api_key, api_url, profile)) as client:
        keys = client.list_ssh_keys()
    if output_format is OutputFormat.json:
        output.print_json([key.to_wire() for key in keys])
        return
    if not keys:
        typer.echo("No SSH keys yet; add one with: gpucloud ssh-keys add")
        return
    now = dt.datetime.now(dt.UTC)
    output.print_table(
        ("name", "fingerprint", "type", "default", "created (UTC)", "expires", "last used"),
        (
            (
                key.name,  # print_table escapes every cell, once
                key.fingerprint or "-",
                key.key_type,
                "*" if key.is_default else "",
                _short(key.created_at),
                _expiry(key.expires_at, now),
                _short(key.last_used_at) if key.last_used_at else "never",
            )
            for key in keys
        ),
    )


@app.command("show")
def show(
    key: KeyArgument,
    output_format: OutputOption = OutputFormat.table,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Show one SSH key: its id, both fingerprints, size, dates, expiry, last use (the
    last login it opened, to the minute) and public key.

    Example: gpucloud ssh-keys show laptop
    """
    with session(Connection(api_key, api_url, profile)) as client:
        found = find_key(client, key)
    if output_format is OutputFormat.json:
        output.print_json(found.to_wire())
        return
    bits = f" ({found.key_bits} bits)" if found.key_bits else ""
    rows = (
        ("name", found.name),
        ("id", found.id),
        ("fingerprint", found.fingerprint or "-"),
        ("md5", found.fingerprint_md5 or "-"),
        ("type", found.key_type + bits),
        ("default", "yes" if found.is_default else "no"),
        ("created", _long(found.created_at)),
        ("updated", _long(found.updated_at)),
        ("expires", _long_expiry(found.expires_at, dt.datetime.now(dt.UTC))),
        ("last used", _long(found.last_used_at) if found.last_used_at else "never"),
        ("public key", found.public_key),
    )
    for label, value in rows:
        typer.echo(f"{label + ':':<13}{value}")


@app.command("add")
def add(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="The public key file (.pub), or - for stdin. "
            "Default: the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            help="The key's name. Default: its comment, else this host's name.",
            show_default=False,
        ),
    ] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in",
            help="Stop the key opening logins after this long, e.g. 90d, 12h, 30m. "
            "Default: it never expires.",
            show_default=False,
        ),
    ] = None,
    output_format: OutputOption = OutputFormat.table,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Add a public key. It is checked here first: a private key is never sent.

    Your first key becomes your default key. An expired key stays listed, and no longer
    opens logins.

    Example: gpucloud ssh-keys add ~/.ssh/id_ed25519.pub --name laptop --expires-in 90d
    """
    from gpucloud.pubkey import PublicKeyError, parse_public_key

    expires_at = None if expires_in is None else _expiry_from_now(expires_in, "--expires-in")
    path = file if file is not None else _default_key_file()
    text = _read_key_file(path)
    _refuse_private_key(path, text)
    try:
        parsed = parse_public_key(text)
    except PublicKeyError as exc:
        fail(f"{_shown(path)}: {exc.message}")
    key_name = name if name is not None else (parsed.comment or socket.gethostname())
    with session(Connection(api_key, api_url, profile)) as client:
        created = client.create_ssh_key(
            name=key_name, public_key=parsed.openssh, expires_at=expires_at
        )
    if output_format is OutputFormat.json:
        output.print_json(created.to_wire())
        return
    default = "; it is your default key" if created.is_default else ""
    until = f"; it expires {_long(created.expires_at)}" if created.expires_at else ""
    typer.echo(f'Added SSH key "{created.name}" ({created.fingerprint}){default}{until}.')


@app.command("rename")
def rename(
    key: KeyArgument,
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME", help="The new name.")],
    output_format: OutputOption = OutputFormat.table,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Give an SSH key a new name.

    Example: gpucloud ssh-keys rename laptop old-laptop
    """
    with session(Connection(api_key, api_url, profile)) as client:
        found = find_key(client, key)
        renamed = client.rename_ssh_key(found.id, name=new_name)
    if output_format is OutputFormat.json:
        output.print_json(renamed.to_wire())
        return
    typer.echo(f'Renamed SSH key "{found.name}" to "{renamed.name}".')


@app.command("expire")
def expire(
    key: KeyArgument,
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--in",
            help="Stop the key opening logins after this long from now, e.g. 90d, 12h, 30m.",
            show_default=False,
        ),
    ] = None,
    never: Annotated[bool, typer.Option("--never", help="Remove the key's expiry.")] = False,
    output_format: OutputOption = OutputFormat.table,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Give an SSH key an expiry (--in 30d), or remove it (--never).

    An expired key stays listed, and no longer opens logins.

    Example: gpucloud ssh-keys expire laptop --in 30d
    """
    if (expires_in is None) == (not never):
        raise typer.BadParameter("give either --in DURATION (e.g. --in 30d) or --never")
    expires_at = None if never else _expiry_from_now(expires_in or "", "--in")
    with session(Connection(api_key, api_url, profile)) as client:
        found = find_key(client, key)
        changed = client.rename_ssh_key(found.id, expires_at=expires_at)
    if output_format is OutputFormat.json:
        output.print_json(changed.to_wire())
        return
    if changed.expires_at is None:
        typer.echo(f'SSH key "{changed.name}" no longer expires.')
    else:
        typer.echo(f'SSH key "{changed.name}" expires {_long(changed.expires_at)}.')


@app.command("make-default")
def make_default(
    key: KeyArgument,
    output_format: OutputOption = OutputFormat.table,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Make an SSH key your default key (the others stop being default).

    Example: gpucloud ssh-keys make-default desktop
    """
    with session(Connection(api_key, api_url, profile)) as client:
        found = find_key(client, key)
        client.make_default_ssh_key(found.id)
        if output_format is OutputFormat.json:
            output.print_json(client.get_ssh_key(found.id).to_wire())
            return
    typer.echo(f'"{found.name}" is now your default SSH key.')


@app.command("delete")
def delete(
    key: KeyArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output_format: OutputOption = OutputFormat.table,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Delete an SSH key, after asking (unless --yes).

    If it was your default key, your newest remaining key becomes the default.

    Example: gpucloud ssh-keys delete old-laptop --yes
    """
    with session(Connection(api_key, api_url, profile)) as client:
        found = find_key(client, key)
        if not yes:
            _confirm(f'Delete SSH key "{found.name}" ({found.fingerprint})?')
        client.delete_ssh_key(found.id)
        successor = None
        if found.is_default and output_format is OutputFormat.table:
            successor = next((k for k in client.list_ssh_keys() if k.is_default), None)
    if output_format is OutputFormat.json:
        output.print_json(found.to_wire())
        return
    then = f' "{successor.name}" is now your default SSH key.' if successor else ""
    typer.echo(f'Deleted SSH key "{found.name}".{then}')


@dataclass
class _ImportReport:
    """What `import` did with each line."""

    added: list[SSHKey] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "added": [key.to_wire() for key in self.added],
            "skipped": [{"line": line, "reason": why} for line, why in self.skipped],
            "refused": [{"line": line, "reason": why} for line, why in self.refused],
        }


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="An authorized_keys file: one public key a line, or - for stdin."
        ),
    ],
    output_format: OutputOption = OutputFormat.table,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Add every key of an authorized_keys file, skipping those you already have.

    Each key is named after its comment (else "FILE line N"), made unique if needed.
    Blank lines and # comments are ignored; lines that are not acceptable keys (with
    options such as command="…", DSA, …) are refused and named in the summary. Exits 1
    if any line was refused.

    Example: gpucloud ssh-keys import ~/.ssh/authorized_keys
    """
    from gpucloud.client import ConflictError, InvalidRequestError
    from gpucloud.pubkey import PublicKeyError, parse_public_key

    text = _read_key_file(file)
    _refuse_private_key(file, text)
    entries = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    source = "stdin" if str(file) == "-" else file.name
    report = _ImportReport()
    with session(Connection(api_key, api_url, profile)) as client:
        existing = client.list_ssh_keys()
        registered = {key.fingerprint: key.name for key in existing}
        names = {key.name for key in existing}
        with _progress(len(entries), f"Importing {_shown(file)}") as advance:
            for number, line in entries:
                advance()
                try:
                    parsed = parse_public_key(line)
                except PublicKeyError as exc:
                    report.refused.append((number, exc.message))
                    continue
                if parsed.fingerprint_sha256 in registered:
                    same = registered[parsed.fingerprint_sha256]
                    report.skipped.append((number, f'already registered as "{same}"'))
                    continue
                base = parsed.comment or f"{source} line {number}"
                key_name = _unique_name(base, names)
                try:
                    created = client.create_ssh_key(name=key_name, public_key=parsed.openssh)
                except ConflictError as exc:
                    report.skipped.append((number, exc.message))
                    continue
                except InvalidRequestError as exc:
                    report.refused.append((number, exc.message))
                    continue
                registered[created.fingerprint] = created.name
                names.add(created.name)
                report.added.append(created)
    if output_format is OutputFormat.json:
        output.print_json(report.as_json())
    else:
        _print_import_summary(file, report)
    if report.refused:
        raise typer.Exit(1)


@app.command("export")
def export(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="Where to write the authorized_keys file. Default: stdout.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace FILE if it exists.")
    ] = False,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Write your keys as an authorized_keys file, default key first.

    Example: gpucloud ssh-keys export authorized_keys
    """
    with session(Connection(api_key, api_url, profile)) as client:
        text = client.get_authorized_keys()
    if file is None or str(file) == "-":
        sys.stdout.write(text)
        return
    if file.exists() and not force:
        fail(f"{file} exists; pass --force to replace it")
    try:
        _write_private_file(file, text)
    except OSError as exc:
        fail(f"Could not write {file}: {exc.strerror or exc}")
    count = len(text.splitlines())
    typer.echo(f"Wrote {count} SSH key{'s' if count != 1 else ''} to {file}.")


def find_key(client: Client, ref: str) -> SSHKey:
    """The caller's key named by `ref` (fingerprint, name or id), as the client finds it.

    Raises the client's NotFoundError, saying where to see the keys that do exist.
    """
    from gpucloud.client import NotFoundError

    try:
        return client.find_ssh_key(ref)
    except NotFoundError as exc:
        raise NotFoundError(f"{exc.message}; `gpucloud ssh-keys list` shows your keys") from None


def _default_key_file() -> Path:
    directory = Path.home() / ".ssh"
    for name in DEFAULT_KEY_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    fail(
        f"No public key found in {directory} (looked for {', '.join(DEFAULT_KEY_FILES)}); "
        "name the .pub file, or make a key with: ssh-keygen -t ed25519"
    )


def _read_key_file(path: Path) -> str:
    """The text of `path` (stdin for -); exits 1 with a clear reason if it cannot be read."""
    if str(path) == "-":
        return sys.stdin.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        fail(f"{path} does not exist")
    except IsADirectoryError:
        fail(f"{path} is a directory; name a .pub file")
    except OSError as exc:
        fail(f"Could not read {path}: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        fail(f"{path} is far too large to be a public key or an authorized_keys file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{path} is not a text file; name the .pub file of your key")


def _refuse_private_key(path: Path, text: str) -> None:
    """Exit 1, having sent nothing, if the text holds a private key."""
    from gpucloud.pubkey import looks_like_private_key

    if not looks_like_private_key(text):
        return
    public = path.with_name(path.name + ".pub")
    instead = (
        f"add {public} instead"
        if str(path) != "-" and public.is_file()
        else "add its .pub file instead"
    )
    fail(
        f"{_shown(path)} holds a private key, which must never leave this machine; "
        f"nothing was sent: {instead}"
    )


def _unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base (2)`, `base (3)`, … whichever is not taken."""
    if base not in taken:
        return base
    number = 2
    while f"{base} ({number})" in taken:
        number += 1
    return f"{base} ({number})"


@contextmanager
def _progress(total: int, description: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; yields the function that advances it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=output.stderr,
        transient=True,
        disable=not output.stderr.is_terminal,
    )
    with progress:
        task = progress.add_task(escape(description), total=total)
        yield lambda: progress.advance(task)


def _print_import_summary(file: Path, report: _ImportReport) -> None:
    typer.echo(
        f"Imported {_shown(file)}: {len(report.added)} added, "
        f"{len(report.skipped)} skipped, {len(report.refused)} refused."
    )
    for key in report.added:
        typer.echo(f'  added    "{key.name}" ({key.fingerprint})')
    for number, why in report.skipped:
        typer.echo(f"  skipped  line {number}: {why}")
    for number, why in report.refused:
        typer.echo(f"  refused  line {number}: {why}")


def _confirm(question: str) -> None:
    """Ask on stderr; exit 1 unless the answer is yes."""
    try:
        agreed = typer.confirm(question, default=False, err=True)
    except typer.Abort:  # end of input: no answer
        agreed = False
    if not sys.stdin.isatty():
        output.stderr.print()  # the answer was not echoed: end the prompt's line
    if not agreed:
        fail("Nothing was deleted (answer y, or pass --yes)")


def _write_private_file(path: Path, text: str) -> None:
    # Readable by its owner only, as sshd expects of an authorized_keys file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _shown(path: Path) -> str:
    return "stdin" if str(path) == "-" else str(path)


def _short(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def _long(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _expiry_from_now(text: str, option: str) -> dt.datetime:
    """Now plus the duration `text`; a bad one is a usage error (exit 2) of `option`."""
    from gpucloud.durations import parse_duration

    try:
        lifetime = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    return dt.datetime.now(dt.UTC) + lifetime


def _expiry(value: dt.datetime | None, now: dt.datetime) -> str:
    if value is None:
        return "never"
    return _short(value) + (" (expired)" if value <= now else "")


def _long_expiry(value: dt.datetime | None, now: dt.datetime) -> str:
    if value is None:
        return "never"
    return _long(value) + (" (expired: no longer opens logins)" if value <= now else "")
