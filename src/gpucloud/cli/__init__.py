"""The `gpucloud` command: the server, the operator's admin commands, the user's commands."""

from __future__ import annotations

import typer

from gpucloud import __version__
from gpucloud.cli import admin, ca, certify, node, serve, ssh_keys, user


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gpucloud {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="gpucloud",
    help="The SSH-keys API of a GPU cloud: run the server, manage API keys and SSH keys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """The SSH-keys API of a GPU cloud."""


app.command("serve")(serve.serve)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.api_keys_app, name="api-keys")
app.add_typer(admin.audit_app, name="audit")
app.add_typer(ca.app, name="ca")
app.command("login")(user.login)
ssh_keys.app.command("certify")(certify.certify)
app.add_typer(ssh_keys.app, name="ssh-keys")
app.add_typer(node.app, name="node")


def main() -> None:
    """Entry point of the `gpucloud` script."""
    app()
