"""The operator's SSH CA commands: `gpucloud ca init | rotate | retire | show`.

They work on the key file named by --key-file or by the server's setting
GPUCLOUD_SSH_CA_KEY_FILE (read through `Settings`, as `serve` reads it), on this
machine, with no server and no database. Messages go to stderr; `show` prints to
stdout. Nothing secret is printed: only public keys and fingerprints. The CA package
(and `cryptography`) is imported inside the commands, so that the other commands do not
pay for it at start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from gpucloud.cli import output
from gpucloud.cli.output import print_json, print_table, stderr
from gpucloud.errors import GpuCloudError

T = TypeVar("T")

ENV_KEY_FILE = "GPUCLOUD_SSH_CA_KEY_FILE"

app = typer.Typer(
    help="Run the SSH certificate authority: make, rotate, retire and show its keys.",
    no_args_is_help=True,
)

KeyFile = Annotated[
    Path | None, typer.Option("--key-file", help=f"The CA key file; default: ${ENV_KEY_FILE}.")
]


@app.command("init")
def init(
    key_file: KeyFile = None,
) -> None:
    """Make the CA's signing key: Ed25519, OpenSSH format, mode 0600; never overwrites.

    Example: GPUCLOUD_SSH_CA_KEY_FILE=/etc/gpucloud/ssh_ca gpucloud ca init
    """
    from gpucloud.ca import keys

    path = _key_file(key_file)
    made = _call(keys.init, path)
    stderr.print(
        f"Made the SSH CA key {path} (mode 0600), fingerprint {made.signing.fingerprint}. "
        "Give every server replica this same file, protected as a TLS private key; "
        "instances trust the keys that `gpucloud ca show --output lines` prints."
    )


@app.command("rotate")
def rotate(
    key_file: KeyFile = None,
    prepare: Annotated[
        bool,
        typer.Option(
            "--prepare",
            help="Only make the next key, trusted at once, signing after the next rotate.",
        ),
    ] = False,
) -> None:
    """Make a new signing key; the old one stays trusted until `gpucloud ca retire`.

    Without a prepared key, the new key signs at once, and instances refuse its
    certificates until they fetch the new trust list; `--prepare` first avoids that.

    Example: gpucloud ca rotate --prepare; (instances fetch the list); gpucloud ca rotate
    """
    from gpucloud.ca import keys

    path = _key_file(key_file)
    if prepare:
        prepared = _call(keys.prepare, path)
        assert prepared.next is not None
        stderr.print(
            f"Prepared the next signing key {prepared.next.fingerprint} in "
            f"{keys.next_file(path)} (mode 0600); it is in the trust list now and signs "
            "nothing yet. Copy it to every replica; once every instance has fetched the new "
            "list, run `gpucloud ca rotate` to make it sign."
        )
        return
    before = _call(keys.load, path)
    new, old = _call(keys.rotate, path)
    if before.next is None:
        warning = (
            " Instances that have not fetched the trust list since refuse the certificates "
            "it signs until they do; next time, run `gpucloud ca rotate --prepare` first."
        )
    else:
        warning = " Instances have trusted it since they fetched the list after --prepare."
    stderr.print(
        f"New signing key {new.signing.fingerprint}; the old key {old.fingerprint} stays "
        f"trusted (in {keys.trusted_file(path)}).{warning} Copy the files to every replica. "
        "Once the certificates the old key signed have expired (at most "
        f"GPUCLOUD_SSH_CERT_MAX_VALIDITY), run: gpucloud ca retire {old.fingerprint}"
    )


@app.command("retire")
def retire(
    fingerprint: Annotated[str, typer.Argument(help="The SHA256:… of an old key, from `ca show`.")],
    key_file: KeyFile = None,
) -> None:
    """Stop trusting an old (or a prepared) CA key; the certificates it signed stop working.

    Example: gpucloud ca retire SHA256:v+JzNwNgNvZiBazP2SXOitCFrlfVSfExhxtNcMDX180
    """
    from gpucloud.ca import keys

    path = _key_file(key_file)
    retired = _call(keys.retire, path, fingerprint)
    if retired.role == "next":
        stderr.print(
            f"Retired the prepared key {retired.fingerprint}, which had signed nothing; its "
            "file is deleted. Delete it on every replica too."
        )
        return
    stderr.print(
        f"Retired {retired.fingerprint}: it is no longer in the trust list, and instances "
        "stop accepting the certificates it signed when they next fetch that list. "
        "Copy the trusted file to every replica."
    )


@app.command("show")
def show(
    key_file: KeyFile = None,
    output_format: Annotated[
        str, typer.Option("--output", help="table, json, or lines (a TrustedUserCAKeys file).")
    ] = "table",
) -> None:
    """List the CA public keys that instances trust: signing first, then next, then previous.

    Example: gpucloud ca show --output lines > /etc/ssh/gpucloud_ca.pub
    """
    from gpucloud.ca import keys

    if output_format not in ("table", "json", "lines"):
        raise typer.BadParameter("use table, json or lines", param_hint="--output")
    current = _call(keys.load, _key_file(key_file))
    if output_format == "lines":
        typer.echo(current.trust_list(), nl=False)
    elif output_format == "json":
        print_json(
            [
                {"fingerprint": k.fingerprint, "role": k.role, "publicKey": k.line}
                for k in current.public_keys
            ]
        )
    else:
        print_table(
            ("fingerprint", "role", "comment"),
            (
                (
                    k.fingerprint,
                    k.role,
                    " ".join(k.line.split()[2:]) or "-",
                )
                for k in current.public_keys
            ),
        )


def _key_file(option: Path | None) -> Path:
    """--key-file, else the file the server's settings name; a usage error if neither."""
    if option is not None:
        return option
    from gpucloud.cli.admin import load_settings

    configured = load_settings().ssh_ca_key_file
    if configured is None or not str(configured).strip():
        raise typer.BadParameter(
            f"name the CA key file: set {ENV_KEY_FILE} or pass --key-file", param_hint="--key-file"
        )
    return configured


def _call(action: Callable[..., T], *args: object) -> T:
    """Run a `keys` operation; a refusal or a file error is one line on stderr, exit 1."""
    try:
        return action(*args)
    except GpuCloudError as exc:
        output.error(exc.message)
    except OSError as exc:
        output.error(f"{exc.filename or 'the CA key file'}: {exc.strerror}")
    raise typer.Exit(1)
