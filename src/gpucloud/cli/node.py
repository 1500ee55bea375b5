"""`gpucloud node …`: set an instance up so that sshd asks gpucloud at every login.

`gpucloud node sshd-config` prints the sshd_config drop-in that wires in the instance-side
command (`gpucloud-authorized-keys`, SPEC 10). docs/instances.md has the whole set-up.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help="Set up an instance: sshd asks the SSH-keys API who may log in.\n\n"
    "Example: gpucloud node sshd-config > /etc/ssh/sshd_config.d/50-gpucloud.conf",
    no_args_is_help=True,
)

DEFAULT_COMMAND = "/usr/local/bin/gpucloud-authorized-keys"
DEFAULT_COMMAND_USER = "gpucloud-keys"


def _sshd_path(value: str, option: str) -> str:
    """`value` if sshd can take it as one token of AuthorizedKeysCommand."""
    # sshd splits the command line at white space, expands %-tokens and has no quoting.
    if not value.startswith("/") or any(char.isspace() or char in "%\"'\\" for char in value):
        raise typer.BadParameter(
            "write an absolute path without spaces, quotes, backslashes or %", param_hint=option
        )
    return value


def sshd_config_lines(*, command: str, command_user: str, config: str | None) -> list[str]:
    """The lines of the drop-in, comments included, each without its line break."""
    invocation = command if config is None else f"{command} --config {config}"
    return [
        "# gpucloud: at every login, sshd asks the SSH-keys API for the keys of the user",
        "# (docs/instances.md). Save as /etc/ssh/sshd_config.d/50-gpucloud.conf, then",
        "# check and reload: sshd -t && systemctl reload ssh",
        f"AuthorizedKeysCommand {invocation} %u %f",
        f"AuthorizedKeysCommandUser {command_user}",
        # The --certificates option (SPEC 11: TrustedUserCAKeys) adds its lines here.
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
) -> None:
    """Print the sshd_config lines that make sshd ask gpucloud at every login.

    Example: gpucloud node sshd-config | sudo tee /etc/ssh/sshd_config.d/50-gpucloud.conf
    """
    # Here, not at the top: every other gpucloud command would pay for loading it.
    from gpucloud.node.authorized_keys import plain_user_name

    _sshd_path(command, "--command")
    if config is not None:
        _sshd_path(config, "--config")
    if not plain_user_name(user):
        raise typer.BadParameter("write a plain user name, e.g. gpucloud-keys", param_hint="--user")
    for line in sshd_config_lines(command=command, command_user=user, config=config):
        typer.echo(line)
