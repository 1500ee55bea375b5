"""`gpucloud node …`: set an instance up so that sshd asks gpucloud at every login.

`gpucloud node sshd-config` prints the sshd_config drop-in that wires in the instance-side
command (`gpucloud-authorized-keys`, SPEC 10), and with `--certificates` the lines that
make sshd trust the service's SSH CA (SPEC 11). docs/instances.md and
docs/certificates.md have the whole set-up.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

app = typer.Typer(
    help="Set up an instance: sshd asks the SSH-keys API who may log in.\n\n"
    "Example: gpucloud node sshd-config > /etc/ssh/sshd_config.d/50-gpucloud.conf",
    no_args_is_help=True,
)

DEFAULT_COMMAND = "/usr/local/bin/gpucloud-authorized-keys"
DEFAULT_COMMAND_USER = "gpucloud-keys"
DEFAULT_CA_FILE = "/etc/ssh/gpucloud_ca.pub"
DEFAULT_PRINCIPALS = "/etc/ssh/gpucloud_principals/%u"
# The tokens sshd expands in AuthorizedPrincipalsFile that name the local user's files.
_PRINCIPALS_TOKENS = re.compile(r"%[%uUh]")


def _sshd_path(value: str, option: str) -> str:
    """`value` if sshd can take it as one token of AuthorizedKeysCommand."""
    # sshd splits the command line at white space, expands %-tokens and has no quoting.
    if not value.startswith(("/", "%h/")) or any(
        char.isspace() or char in "%\"'\\" for char in value
    ):
        raise typer.BadParameter(
            "write an absolute path without spaces, quotes, backslashes or %", param_hint=option
        )
    return value


def _principals_path(value: str) -> str:
    """`value` if sshd can take it as AuthorizedPrincipalsFile: one token, %u %U %h allowed."""
    bare = _PRINCIPALS_TOKENS.sub("", value)
    if not value.startswith(("/", "%h/")) or any(
        char.isspace() or char in "%\"'\\" for char in bare
    ):
        raise typer.BadParameter(
            "write an absolute path (or %h/…) without spaces, quotes or backslashes; of the % "
            "tokens, "
            "only %u (the user), %U (its uid) and %h (its home) are allowed",
            param_hint="--principals-file",
        )
    return value


def sshd_certificate_lines(*, ca_file: str, principals_file: str) -> list[str]:
    """The lines that make sshd trust gpucloud's certificates, comments included."""
    return [
        "# gpucloud SSH certificates (docs/certificates.md): trust the CA keys of",
        f"# GET /gpu-cloud/ssh-ca, fetched into {ca_file} at boot and regularly;",
        "# each user's principals file names the owners whose certificates open it.",
        f"TrustedUserCAKeys {ca_file}",
        f"AuthorizedPrincipalsFile {principals_file}",
    ]


def sshd_config_lines(*, command: str, command_user: str, config: str | None) -> list[str]:
    """The lines of the drop-in, comments included, each without its line break."""
    invocation = command if config is None else f"{command} --config {config}"
    return [
        "# gpucloud: at every login, sshd asks the SSH-keys API for the keys of the user",
        "# (docs/instances.md). Save as /etc/ssh/sshd_config.d/50-gpucloud.conf, then",
        "# check and reload: sshd -t && systemctl reload ssh",
        f"AuthorizedKeysCommand {invocation} %u %f",
        f"AuthorizedKeysCommandUser {command_user}",
    ]


@app.command("sshd-config")
def sshd_config(
    command: Annotated[
        str,
        typer.Option(
            help="Absolute path of gpucloud-authorized-keys; it and every directory above "
            "it must be owned by root and writable by no one else, or sshd refuses it."
        ),
    ] = DEFAULT_COMMAND,
    user: Annotated[
        str,
        typer.Option(
            help="The unprivileged user sshd runs the command as (AuthorizedKeysCommandUser)."
        ),
    ] = DEFAULT_COMMAND_USER,
    config: Annotated[
        str | None,
        typer.Option(
            help="The command's configuration file, if not /etc/gpucloud/authorized-keys.conf."
        ),
    ] = None,
    certificates: Annotated[
        bool,
        typer.Option(
            "--certificates",
            help="Also trust the service's SSH CA: TrustedUserCAKeys and "
            "AuthorizedPrincipalsFile (docs/certificates.md).",
        ),
    ] = False,
    lookups: Annotated[
        bool,
        typer.Option(
            "--lookups/--no-lookups",
            help="Print the AuthorizedKeysCommand lines (--no-lookups: certificates only).",
        ),
    ] = True,
    ca_file: Annotated[
        str,
        typer.Option(help="Where the instance keeps the CA keys of GET /gpu-cloud/ssh-ca."),
    ] = DEFAULT_CA_FILE,
    principals_file: Annotated[
        str,
        typer.Option(
            help="Each local user's file of owner names whose certificates open it "
            "(%u is the user)."
        ),
    ] = DEFAULT_PRINCIPALS,
) -> None:
    """Print the sshd_config lines that make sshd ask gpucloud at every login.

    With --certificates, also the lines that make sshd accept certificates signed by
    gpucloud's CA for the owners each user's principals file names.

    Example: gpucloud node sshd-config | sudo tee /etc/ssh/sshd_config.d/50-gpucloud.conf
    """
    # Here, not at the top: every other gpucloud command would pay for loading it.
    from gpucloud.node.authorized_keys import plain_user_name

    _sshd_path(command, "--command")
    if config is not None:
        _sshd_path(config, "--config")
    if not plain_user_name(user):
        raise typer.BadParameter("write a plain user name, e.g. gpucloud-keys", param_hint="--user")
    if not lookups and not certificates:
        raise typer.BadParameter(
            "--no-lookups leaves nothing to print; add --certificates", param_hint="--no-lookups"
        )
    lines = []
    if lookups:
        lines += sshd_config_lines(command=command, command_user=user, config=config)
    if certificates:
        _sshd_path(ca_file, "--ca-file")
        _principals_path(principals_file)
        lines += sshd_certificate_lines(ca_file=ca_file, principals_file=principals_file)
    for line in lines:
        typer.echo(line)
