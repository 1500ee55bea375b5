"""Fixtures of the CLI tests: one real server for them all, a fresh owner and home per test.

Every command runs as a real `gpucloud` process, with HOME set to the test's own
directory (so `~/.ssh` and `~/.sesterce/credentials` are the test's) and no GPUCLOUD_ or
SESTERCE_ variable inherited from the shell running the tests. The tests run on SQLite
only: the database is not their point, and each test isolates itself by its owner.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpucloud.ca import keys
from gpucloud.client import Client
from tests.support import keygen
from tests.support.api_keys import create_api_key
from tests.support.databases import SQLiteTemplate
from tests.support.server import GPUCLOUD, ServerProcess

RunCLI = Callable[..., subprocess.CompletedProcess[str]]
_owners = itertools.count()


@pytest.fixture(scope="session")
def cli_server(
    sqlite_template: SQLiteTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A real `gpucloud serve` on a free port, shared by the CLI tests (each has its owner)."""
    directory = tmp_path_factory.mktemp("cli-server")
    ca_key_file = directory / "ca" / "ssh_ca"
    keys.init(ca_key_file)
    process = ServerProcess(
        sqlite_template.copy_to(directory),
        directory / "server.log",
        env={
            # The wrong-key tests must not lock the others out of this shared server.
            "GPUCLOUD_AUTH_FAILURES_PER_MINUTE": "10000",
            # `ssh-keys certify` needs a CA (tests/cli/test_certify.py).
            "GPUCLOUD_SSH_CA_KEY_FILE": str(ca_key_file),
        },
    ).start()
    yield process
    process.stop()


@pytest.fixture
def api_key(cli_server: ServerProcess) -> str:
    """An API key of a new owner, who has no SSH key yet."""

    return create_api_key(cli_server.env["GPUCLOUD_DATABASE_URL"], f"cli-user-{next(_owners)}")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The test's home directory, with an empty ~/.ssh."""
    directory = tmp_path / "home"
    (directory / ".ssh").mkdir(parents=True, mode=0o700)
    return directory


@pytest.fixture
def run(cli_server: ServerProcess, api_key: str, home: Path) -> RunCLI:
    """Run `gpucloud …` as the test's owner; `run(*args, input=, env=)` returns the process.

    GPUCLOUD_API_URL and GPUCLOUD_API_KEY point at the server by default; `env` overrides
    them, and a value of None removes a variable.
    """

    def run_cli(
        *args: str, input: str | None = None, env: dict[str, str | None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        base = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("GPUCLOUD_", "SESTERCE_"))
        }
        base.update(HOME=str(home), GPUCLOUD_API_URL=cli_server.url, GPUCLOUD_API_KEY=api_key)
        for name, value in (env or {}).items():
            if value is None:
                base.pop(name, None)
            else:
                base[name] = value
        return subprocess.run(
            [GPUCLOUD, *args],
            env=base,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run_cli


def ssh_key(directory: Path, comment: str = "ada@laptop") -> keygen.GeneratedKey:
    """A new Ed25519 key pair made by ssh-keygen in `directory`."""
    return keygen.generate(directory, "ed25519", comment)


@pytest.fixture
def api(cli_server: ServerProcess, api_key: str) -> Iterator[Client]:
    """The test owner's Python client, to set up and check what the commands did, fast."""
    with Client(api_key=api_key, base_url=cli_server.url) as client:
        yield client
