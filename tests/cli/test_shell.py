"""The CLI as a shell tool: help with an example everywhere, usage errors, completion, speed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gpucloud.cli import app
from gpucloud.client import Client
from tests.cli.conftest import RunCLI
from tests.support.bulk_keys import ed25519_public_line
from tests.support.modules import modules_loaded_by

COMMANDS = [
    ["login"],
    ["ssh-keys"],
    *(
        ["ssh-keys", name]
        for name in ("list", "show", "add", "rename", "make-default", "delete", "import", "export")
    ),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    """If --help is asked of any user command, then it answers with an example."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Example: gpucloud {' '.join(command)}" in result.output


@pytest.mark.parametrize(
    "arguments",
    [
        ["ssh-keys", "list", "--output", "xml"],
        ["ssh-keys", "list", "--frobnicate"],
        ["ssh-keys", "rename", "only-one-argument"],
        ["ssh-keys", "list", "--api-key", "gck_x", "--api-url", "127.0.0.1:8000"],
    ],
    ids=["bad-value", "unknown-option", "missing-argument", "url-without-scheme"],
)
def test_usage_errors_exit_2(arguments: list[str]) -> None:
    """If the command line is wrong, then the exit code is 2, as for any usage error."""
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output


def test_help_loads_neither_the_client_nor_the_server() -> None:
    """If `gpucloud ssh-keys --help` runs, then httpx, the key parser and the server stay unloaded."""
    loaded = modules_loaded_by(
        "import sys\n"
        "from gpucloud.cli import main\n"
        "sys.argv = ['gpucloud', 'ssh-keys', 'add', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    heavy = ("httpx", "cryptography", "fastapi", "sqlalchemy", "gpucloud.client", "gpucloud.pubkey")
    assert [m for m in loaded if m.split(".")[0] in heavy or m in heavy] == []


def test_shell_completion_offers_the_names_of_your_keys(run: RunCLI, api: Client) -> None:
    """If the shell completes KEY, then it gets the names of the owner's keys that match."""
    api.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    api.create_ssh_key(name="desktop", public_key=ed25519_public_line())
    api.create_ssh_key(name="lab", public_key=ed25519_public_line())
    completion = {
        "_GPUCLOUD_COMPLETE": "complete_bash",
        "COMP_WORDS": "gpucloud ssh-keys show la",
        "COMP_CWORD": "3",
    }
    result = run(env=completion)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["laptop", "lab"]
