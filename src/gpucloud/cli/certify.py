"""`gpucloud ssh-keys certify KEY`: get an SSH certificate and put it where `ssh` finds it.

A command of `gpucloud ssh-keys` (gpucloud.cli adds it to that group), kept in a
module of its own: it is the one command that writes into ~/.ssh. `ssh -i
~/.ssh/id_ed25519 host` offers `~/.ssh/id_ed25519-cert.pub` by itself, so the
certificate is written beside the `.pub` file whose key it certifies (found by its
fingerprint), under the name `ssh` looks for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpucloud.cli.ssh_keys import KeyArgument, find_key
from gpucloud.cli.user import ApiKeyOption, ApiUrlOption, Connection, ProfileOption, fail, session

if TYPE_CHECKING:
    from gpucloud.client import SSHCertificate, SSHKey

CERT_SUFFIX = "-cert.pub"
# Far more than any public key file; the .pub files of ~/.ssh are read to compare them.
_MAX_PUB_BYTES = 64 * 1024


def certify(
    key: KeyArgument,
    valid_for: Annotated[
        str | None,
        typer.Option(
            "--valid-for",
            help="How long the certificate is valid, e.g. 30m or 8h (default: the "
            "server's, 8h unless configured; at most its maximum, 24h unless configured).",
            show_default=False,
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the certificate here instead (- for stdout). Default: beside the "
            "matching ~/.ssh/*.pub, as *-cert.pub.",
            show_default=False,
        ),
    ] = None,
    api_key: ApiKeyOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
) -> None:
    """Get a short-lived SSH certificate of a key, where `ssh` uses it by itself.

    The certificate goes beside the ~/.ssh/*.pub file of the same key (found by its
    fingerprint): ~/.ssh/id_ed25519.pub gets ~/.ssh/id_ed25519-cert.pub, which
    `ssh -i ~/.ssh/id_ed25519 HOST` offers with the key.

    Example: gpucloud ssh-keys certify laptop --valid-for 8h
    """
    with session(Connection(api_key, api_url, profile)) as client:
        found = find_key(client, key)
        # Before asking: a certificate with nowhere to go would be an audit event for nothing.
        target = None if output_file is not None else _beside_public_key(found)
        issued = client.certify_ssh_key(found.id, valid_for=valid_for)
    until = _until(issued)
    if output_file is not None and str(output_file) == "-":
        sys.stdout.write(issued.certificate + "\n")
        typer.echo(f'Certificate of "{found.name}" (serial {issued.serial}) {until}.', err=True)
        return
    path = output_file if output_file is not None else target
    assert path is not None
    try:
        _write_public_file(path, issued.certificate + "\n")
    except OSError as exc:
        fail(f"Could not write {path}: {exc.strerror or exc}")
    typer.echo(f'Wrote the certificate of "{found.name}" to {path}; it is {until}.')
    if output_file is None:
        private = path.with_name(path.name.removesuffix(CERT_SUFFIX))
        typer.echo(f"ssh -i {private} HOST uses it by itself.")


def _beside_public_key(key: SSHKey) -> Path:
    """Where the certificate of `key` goes: `<stem>-cert.pub` beside the ~/.ssh/*.pub of
    the same fingerprint. Exits 1, saying what to do, when no such file is there."""
    from gpucloud.pubkey import PublicKeyError, parse_public_key

    directory = Path.home() / ".ssh"
    try:
        candidates = sorted(directory.glob("*.pub"))
    except OSError:
        candidates = []
    for pub in candidates:
        if pub.name.endswith(CERT_SUFFIX) or not pub.is_file():
            continue
        try:
            with pub.open("rb") as handle:
                text = handle.read(_MAX_PUB_BYTES).decode("utf-8")
            if parse_public_key(text).fingerprint_sha256 == key.fingerprint:
                return pub.with_name(pub.name.removesuffix(".pub") + CERT_SUFFIX)
        except (OSError, UnicodeDecodeError, PublicKeyError):
            continue
    fail(
        f'No public key file in {directory} holds "{key.name}" ({key.fingerprint}); '
        "put its .pub file there, or pass --output FILE (or - for stdout)"
    )


def _until(issued: SSHCertificate) -> str:
    """`valid until 2026-12-02 14:39:20 UTC (in 8h 0m)`."""
    left = issued.valid_before - dt.datetime.now(dt.UTC)
    minutes = max(0, round(left.total_seconds() / 60))
    end = issued.valid_before.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"valid until {end} (in {minutes // 60}h {minutes % 60}m)"


def _write_public_file(path: Path, text: str) -> None:
    """Replace `path` whole, by renaming a finished file over it: `ssh` never reads half
    a certificate. Mode 0644: a certificate is public, as the .pub file beside it."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
