"""Where the CLI finds its API key and URL: `gpucloud login`, flags, environment, profiles."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from gpucloud.client import Client
from gpucloud.client._config import read_api_key, write_api_key
from tests.cli.conftest import RunCLI
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess

UNKNOWN_SECRET = "gck_" + "A" * 43
NOWHERE = "http://127.0.0.1:9"
NO_KEY_ENV: dict[str, str | None] = {"GPUCLOUD_API_KEY": None}


def credentials(home: Path) -> Path:
    return home / ".sesterce" / "credentials"


def fails(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert words in result.stderr, result.stderr


def test_login_stores_a_checked_key_that_every_command_then_uses(
    run: RunCLI, api_key: str, api: Client, home: Path
) -> None:
    """If login reads a working key from stdin, then it is stored 0600 and used by list."""
    api.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    result = run("login", input=f"{api_key}\n", env=NO_KEY_ENV)
    assert result.returncode == 0, result.stderr
    assert "(1 SSH key)" in result.stdout
    path = credentials(home)
    assert read_api_key(path, "default") == api_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = run("ssh-keys", "list", "-o", "json", env=NO_KEY_ENV)
    assert listed.returncode == 0, listed.stderr
    assert '"laptop"' in listed.stdout


def test_login_refuses_a_key_the_api_refuses_and_writes_nothing(run: RunCLI, home: Path) -> None:
    """If login is given a key the API does not know, then exit 1 and no file."""
    fails(run("login", "--api-key", UNKNOWN_SECRET), "API key not found")
    assert not credentials(home).exists()


def test_without_any_key_the_error_says_how_to_log_in(run: RunCLI) -> None:
    """If no flag, variable or profile holds a key, then exit 1 says to run gpucloud login."""
    fails(run("ssh-keys", "list", env=NO_KEY_ENV), "gpucloud login")


def test_the_profile_flag_picks_the_profile(run: RunCLI, api_key: str, home: Path) -> None:
    """If the default profile's key is wrong, then --profile work uses the work profile's key."""
    write_api_key(credentials(home), "default", UNKNOWN_SECRET)
    write_api_key(credentials(home), "work", api_key)
    assert run("ssh-keys", "list", "--profile", "work", env=NO_KEY_ENV).returncode == 0
    fails(run("ssh-keys", "list", env=NO_KEY_ENV), "profile 'default'")


def test_the_flag_beats_the_variable_which_beats_the_file(
    run: RunCLI, api_key: str, home: Path
) -> None:
    """If file, GPUCLOUD_API_KEY and --api-key disagree, then the flag, then the variable wins."""
    write_api_key(credentials(home), "default", api_key)
    fails(run("ssh-keys", "list", env={"GPUCLOUD_API_KEY": UNKNOWN_SECRET}), "GPUCLOUD_API_KEY")
    flagged = run(
        "ssh-keys", "list", "--api-key", api_key, env={"GPUCLOUD_API_KEY": UNKNOWN_SECRET}
    )
    assert flagged.returncode == 0, flagged.stderr


def test_gpucloud_api_url_beats_the_hosted_clis_variable(
    run: RunCLI, cli_server: ServerProcess
) -> None:
    """If only SESTERCE_CLOUD_API_URL is set it is used; GPUCLOUD_API_URL beats it."""
    hosted_only = {"GPUCLOUD_API_URL": None, "SESTERCE_CLOUD_API_URL": cli_server.url}
    assert run("ssh-keys", "list", env=hosted_only).returncode == 0
    both = {"GPUCLOUD_API_URL": cli_server.url, "SESTERCE_CLOUD_API_URL": NOWHERE}
    assert run("ssh-keys", "list", env=both).returncode == 0
    fails(run("ssh-keys", "list", env={"GPUCLOUD_API_URL": NOWHERE}), NOWHERE)
