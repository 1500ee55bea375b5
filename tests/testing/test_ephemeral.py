"""`gpucloud serve --ephemeral`: a throw-away database, a ready API key, removed at exit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gpucloud.harness import TOKEN_HEADER
from tests.support.secret_audit import SECRET
from tests.support.server import GPUCLOUD, free_port

pytestmark = pytest.mark.slow

DIRECTORY = re.compile(r"its database is in (\S+), removed when the server stops")


@dataclass
class Ephemeral:
    process: subprocess.Popen[str]
    url: str
    api_key: str
    directory: Path
    token_file: Path
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Send `sig`, wait for the end; the exit status and the rest of stdout."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        rest, _ = self.process.communicate(timeout=30)
        return self.process.returncode, rest


def _start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Ephemeral:
    port = free_port()
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [GPUCLOUD, "serve", "--ephemeral", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=tmp_path,
        )
    assert process.stdout is not None
    api_key = process.stdout.readline().rstrip("\n")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, stderr_path.read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    found = DIRECTORY.search(stderr_path.read_text())
    assert found, stderr_path.read_text()
    directory = Path(found.group(1))
    token = re.search(r"need the token in (\S+)\.", stderr_path.read_text())
    assert token
    return Ephemeral(process, url, api_key, directory, Path(token.group(1)), stderr_path)


@pytest.fixture
def ephemeral(tmp_path: Path) -> Iterator[Ephemeral]:
    """A `gpucloud serve --ephemeral` process, stopped at the end if a test left it."""
    server = _start(tmp_path)
    yield server
    server.stop()
    assert not server.directory.exists()


def test_it_prints_a_working_api_key_alone_on_stdout(ephemeral: Ephemeral) -> None:
    """If `serve --ephemeral` starts, then stdout holds one API key and nothing else, the
    key lists no SSH keys, and stderr says where the database is."""
    assert SECRET.fullmatch(ephemeral.api_key)
    listed = httpx.get(
        f"{ephemeral.url}/gpu-cloud/ssh-keys", headers={"x-api-key": ephemeral.api_key}
    )
    assert listed.status_code == 200
    assert listed.json() == []
    assert f"Database: SQLite file {ephemeral.directory}/gpucloud.db" in ephemeral.stderr()
    assert ephemeral.api_key not in ephemeral.stderr()
    _, rest = ephemeral.stop()
    assert rest == ""
    assert SECRET.search(ephemeral.stderr()) is None


def test_its_directory_and_token_are_private(ephemeral: Ephemeral) -> None:
    """If `serve --ephemeral` runs, then its directory is readable by its user only and
    its control token file too, and the token opens the test controls."""
    assert ephemeral.directory.stat().st_mode & 0o777 == 0o700
    assert ephemeral.token_file.parent == ephemeral.directory
    assert ephemeral.token_file.stat().st_mode & 0o777 == 0o600
    token = ephemeral.token_file.read_text().strip()
    answer = httpx.post(f"{ephemeral.url}/_gpucloud/reset", headers={TOKEN_HEADER: token})
    assert answer.status_code == 204
    # The reset removed the printed key with everything else.
    listed = httpx.get(
        f"{ephemeral.url}/gpu-cloud/ssh-keys", headers={"x-api-key": ephemeral.api_key}
    )
    assert listed.status_code == 404


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_its_database_is_removed_when_it_is_stopped(
    ephemeral: Ephemeral, stop: signal.Signals
) -> None:
    """If an ephemeral server is stopped by Ctrl-C, SIGTERM or a closed terminal, then
    its directory and database are gone, and the process ends by that signal."""
    assert (ephemeral.directory / "gpucloud.db").exists()
    assert ephemeral.stop(stop)[0] == -stop
    assert not ephemeral.directory.exists()


def test_a_token_file_given_is_written_there_and_removed_at_exit(tmp_path: Path) -> None:
    """If `--control-token-file` names a file, then the token is written there (0600)
    instead of the temporary directory, and removed when the server stops."""
    token_file = tmp_path / "token"
    server = _start(tmp_path, "--control-token-file", str(token_file))
    try:
        assert server.token_file == token_file
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert not (server.directory / "control-token").exists()
    finally:
        server.stop()
    assert not token_file.exists()
    assert not server.directory.exists()


def test_it_ignores_the_configured_database(tmp_path: Path) -> None:
    """If GPUCLOUD_DATABASE_URL names a database, then `serve --ephemeral` leaves it
    alone and serves its own."""
    configured = tmp_path / "production.db"
    server = _start(tmp_path, env={"GPUCLOUD_DATABASE_URL": f"sqlite:///{configured}"})
    try:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert not configured.exists()
        assert str(server.directory) in server.stderr()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--ephemeral", "--workers", "2"], "runs in one process"),
        (["--control-token-file", "token"], "has test controls"),
    ],
)
def test_options_that_do_not_fit_are_refused(
    tmp_path: Path, args: list[str], complaint: str
) -> None:
    """If --ephemeral is asked for several workers, or a token file without --ephemeral,
    then `serve` refuses at once and says why, leaving no directory behind."""
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("gpucloud-ephemeral-*"))
    result = subprocess.run(
        [GPUCLOUD, "serve", *args], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2
    assert complaint in " ".join(result.stderr.split())
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("gpucloud-ephemeral-*")) <= before
