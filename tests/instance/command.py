"""Running `gpucloud-authorized-keys` as sshd runs it, and checking what it prints.

sshd runs the command with a bare environment, stdin on /dev/null, and reads stdout as
an authorized_keys file. `run_command` does the same, and checks on every run what must
hold whatever the case: stdout is nothing but complete lines that the server's own key
parser accepts (after an `expiry-time` option), only with exit status 0, and neither
stream carries an API key.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from gpucloud.pubkey import parse_public_key
from tests.support.server import free_port

COMMAND = Path(sys.executable).with_name("gpucloud-authorized-keys")
# What sshd leaves in the environment of an AuthorizedKeysCommand, near enough.
BARE_ENVIRONMENT = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
_EXPIRY = re.compile(r'expiry-time="\d{14}Z" ')
_SECRET = re.compile(r"gck_[A-Za-z0-9_-]{43}")
_LOOKUP = re.compile(
    r"gpucloud-authorized-keys: lookup user=(?P<user>\S*) fingerprint=(?P<fingerprint>\S+) "
    r'outcome=(?P<outcome>\w+) lines=(?P<lines>\d+) reason="(?P<reason>[^"]*)"'
)


@dataclass(frozen=True)
class Run:
    """One finished run of the command."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def lookup(self) -> dict[str, str]:
        """The fields of the run's one lookup log line (user, fingerprint, outcome, …)."""
        found = [match.groupdict() for match in _LOOKUP.finditer(self.stderr)]
        assert len(found) == 1, f"expected one lookup line on stderr, got:\n{self.stderr}"
        return found[0]

    @property
    def outcome(self) -> str:
        return self.lookup["outcome"]


def assert_pure(stdout: bytes, returncode: int) -> None:
    """Fail unless stdout is only complete, valid authorized_keys lines (status 0 if any)."""
    if not stdout:
        return
    assert returncode == 0, f"lines printed with exit status {returncode}: {stdout!r}"
    text = stdout.decode("utf-8")
    assert text.endswith("\n"), f"stdout ends in a partial line: {text[-80:]!r}"
    for line in text.splitlines():
        key = _EXPIRY.sub("", line, count=1) if line.startswith("expiry-time=") else line
        parsed = parse_public_key(key)  # raises on anything the API would not accept
        assert parsed.openssh == key, f"not in canonical form: {line!r}"


def run_command(*args: str, timeout: float = 60) -> Run:
    """Run the command with `args`, as sshd would; stdout purity is checked."""
    started = time.monotonic()
    result = subprocess.run(
        [str(COMMAND), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=BARE_ENVIRONMENT,
        cwd="/",
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    assert_pure(result.stdout, result.returncode)
    stderr = result.stderr.decode("utf-8", "replace")
    for stream in (result.stdout.decode("utf-8", "replace"), stderr):
        assert not _SECRET.search(stream), "an API key reached the command's output"
    return Run(result.returncode, result.stdout.decode(), stderr, seconds)


class Node:
    """An instance's files for the command: configuration, credentials and cache.

    All under `root` (a directory only root can change), in the modes the docs ask for.
    """

    def __init__(self, root: Path, *, group: int | None = None) -> None:
        self.root = root
        self.config = root / "authorized-keys.conf"
        self.cache = root / "cache"
        self.credentials = root / "keys"
        # With `group` (the command user's, when sshd runs it), root:group 0750 and 0640.
        self.group = group
        self.credentials.mkdir(mode=0o700, exist_ok=True)
        if group is not None:
            os.chown(self.credentials, 0, group)
            self.credentials.chmod(0o750)

    def credential(self, user: str, secret: str) -> Path:
        """Write `secret` as the credential file of `user` (0600, or 0640 for the group)."""
        path = self.credentials / user
        path.write_text(secret + "\n")
        if self.group is None:
            path.chmod(0o600)
        else:
            os.chown(path, 0, self.group)
            path.chmod(0o640)
        return path

    def configure(
        self,
        url: str,
        users: dict[str, str],
        *,
        timeout: str = "5",
        max_stale: str = "1h",
    ) -> Path:
        """Write a valid configuration: `users` maps a local user to an API key secret."""
        lines = ["[server]", f"url = {url}", f"timeout = {timeout}", "[cache]"]
        lines += [f"directory = {self.cache}", f"max_stale = {max_stale}", "[users]"]
        lines += [f"{user} = {self.credential(user, secret)}" for user, secret in users.items()]
        return self.write_config("\n".join(lines) + "\n")

    def cut_off(self) -> None:
        """Point the configuration at a port where nothing listens: the API is unreachable."""
        text = self.config.read_text()
        url = next(line for line in text.splitlines() if line.startswith("url = "))
        self.write_config(text.replace(url, f"url = http://127.0.0.1:{free_port()}"))

    def write_config(self, text: str) -> Path:
        self.config.write_text(text)
        self.config.chmod(0o644)
        return self.config

    def run(self, *args: str, timeout: float = 60) -> Run:
        """The command with this node's configuration."""
        return run_command("--config", str(self.config), *args, timeout=timeout)

    def cache_files(self, user: str | None = None) -> list[Path]:
        """The cache entries (of `user`, or all), unfinished writes included."""
        if not self.cache.exists():
            return []
        return sorted(
            path
            for path in self.cache.iterdir()
            if user is None or path.name.startswith((f"{user}@", f".{user}@"))
        )

    def age_cache(self, seconds: float) -> None:
        """Make every cache entry `seconds` older, as if written that long ago."""
        for path in self.cache_files():
            then = path.stat().st_mtime - seconds
            os.utime(path, (then, then))


def register(
    url: str, secret: str, public_line: str, name: str, expires_at: str | None = None
) -> str:
    """Register a public key with the API (expiring at `expires_at`, if given); its id."""
    body = {"name": name, "publicKey": public_line}
    if expires_at is not None:
        body["expiresAt"] = expires_at
    response = httpx.post(
        f"{url}/gpu-cloud/ssh-keys", headers={"x-api-key": secret}, json=body, timeout=10
    )
    assert response.status_code == 201, response.text
    key_id: str = response.json()["_id"]
    return key_id


def delete(url: str, secret: str, key_id: str) -> None:
    """Delete a registered key."""
    response = httpx.delete(
        f"{url}/gpu-cloud/ssh-keys/{key_id}", headers={"x-api-key": secret}, timeout=10
    )
    assert response.status_code == 204, response.text
