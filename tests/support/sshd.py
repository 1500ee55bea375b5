"""A real OpenSSH sshd for login tests: system users, a root-owned command, sshd itself, ssh.

Everything here changes the machine (users in /etc/passwd, files under /usr/local/lib, a
process on a port), so it needs root, and every piece has a `remove`/`stop` that the
fixtures call as finalizers, also when a test fails. Names carry a random suffix, so that
several test sessions on one machine do not meet.

- `unavailable()`: why login tests cannot run here, or None.
- `create_user` / `delete_user`: a login user (home, /bin/sh, unlocked) or a system user
  for AuthorizedKeysCommandUser (no home, no shell).
- `RootDirectory`: a directory that sshd accepts a command in: owned by root, and no
  directory above it writable by anyone else (sshd refuses commands under /tmp).
- `Sshd`: `/usr/sbin/sshd -D -e -f CONFIG` on 127.0.0.1 and a free port, with its own host
  key and pid file, `UsePAM no`, and the caller's extra configuration lines.
- `login(...)`: `ssh -i KEY … user@127.0.0.1 true`; whether it logged in.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

SSHD = Path("/usr/sbin/sshd")
SSH = shutil.which("ssh") or "/usr/bin/ssh"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
REQUIRE = os.environ.get("GPUCLOUD_TEST_REQUIRE_SSHD") == "1"
# sshd's privilege-separation directory; Debian's service creates it at start.
PRIVSEP_DIRECTORY = Path("/run/sshd")
# Where RootDirectory makes its directories: root's, and in no writable directory.
ROOT_PARENT = Path("/usr/local/lib")


def unavailable() -> str | None:
    """Why sshd login tests cannot run on this machine, or None if they can."""
    if os.geteuid() != 0:
        return "login tests need root (they add users and start sshd)"
    for tool in (str(SSHD), SSH, SSH_KEYGEN, "/usr/sbin/useradd", "/usr/sbin/runuser"):
        if not Path(tool).exists():
            return f"{tool} is missing (apt-get install openssh-server openssh-client)"
    return None


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)


def _with_retries(*command: str) -> None:
    """Run a user-database command, waiting while another one holds its lock."""
    for _ in range(50):
        result = _run(*command, check=False)
        if result.returncode == 0:
            return
        if "lock" not in result.stderr and "try again" not in result.stderr:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")


def create_user(prefix: str, *, login: bool) -> str:
    """A new user, `prefix` + 6 random hex digits; a login user can log in with a key."""
    name = f"{prefix}{secrets.token_hex(3)}"
    if login:
        _with_retries("/usr/sbin/useradd", "--create-home", "--shell", "/bin/sh", name)
        # useradd locks the password ("!"), and sshd without PAM refuses locked accounts;
        # "*" is no password, but an account that keys may open.
        _with_retries("/usr/sbin/usermod", "--password", "*", name)
    else:
        _with_retries(
            "/usr/sbin/useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        )
    return name


def delete_user(name: str) -> None:
    """Remove the user (and its home); quiet if it is already gone."""
    if _run("getent", "passwd", name, check=False).returncode != 0:
        return
    _with_retries("/usr/sbin/userdel", "--remove", name)
    if _run("getent", "group", name, check=False).returncode == 0:
        _with_retries("/usr/sbin/groupdel", name)


def run_as(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    """`command` run as `user`, as sshd would run a command as AuthorizedKeysCommandUser."""
    return _run("/usr/sbin/runuser", "-u", user, "--", *command, check=False)


class RootDirectory:
    """A fresh directory under /usr/local/lib, owned by root, mode 0755, that sshd trusts."""

    def __init__(self, prefix: str = "gpucloud-sshd-") -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=ROOT_PARENT))
        self.path.chmod(0o755)
        problem = untrusted_by_sshd(self.path)
        if problem is not None:
            self.remove()
            raise RuntimeError(problem)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def untrusted_by_sshd(path: Path) -> str | None:
    """Why sshd would refuse a command at or under `path` (its directories), or None."""
    for directory in [path, *path.parents]:
        info = directory.stat()
        if info.st_uid != 0 or stat.S_IMODE(info.st_mode) & 0o022:
            return f"{directory} is not root's alone (uid {info.st_uid}, mode {info.st_mode:o})"
    return None


def readable_by(user: str, path: Path) -> bool:
    """True if `user` can read `path` (and so reach it through every directory above)."""
    return run_as(user, "/usr/bin/test", "-r", str(path)).returncode == 0


@dataclass
class Sshd:
    """An sshd on 127.0.0.1 and a free port; `extra` lines are added to its configuration."""

    directory: Path
    extra: list[str]

    def __post_init__(self) -> None:
        self.port = free_port()
        self.config = self.directory / "sshd_config"
        self.host_key = self.directory / "host_ed25519"
        self.log_path = self.directory / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _config_lines(self) -> list[str]:
        return [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin no",
            # Only what the test configures decides: no ~/.ssh/authorized_keys.
            "AuthorizedKeysFile none",
            "StrictModes yes",
            "UseDNS no",
            "LogLevel VERBOSE",
            "MaxStartups 100",
            *self.extra,
        ]

    def start(self, timeout: float = 20) -> Sshd:
        PRIVSEP_DIRECTORY.mkdir(mode=0o755, exist_ok=True)
        if not self.host_key.exists():
            _run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key))
        self.config.write_text("\n".join(self._config_lines()) + "\n")
        checked = _run(str(SSHD), "-t", "-f", str(self.config), check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"sshd refuses its configuration: {checked.stderr.strip()}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited at start: {self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0-"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not start: {self.log()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class Login:
    """One `ssh … true`: whether it logged in, and what ssh said."""

    ok: bool
    stderr: str
    seconds: float


def login(*, user: str, key: Path, port: int, timeout: float = 60) -> Login:
    """Log in as `user` with the private key file `key` and run `true`."""
    started = time.monotonic()
    result = subprocess.run(
        [
            SSH,
            "-F",
            "/dev/null",
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
            "-p",
            str(port),
            f"{user}@127.0.0.1",
            "true",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Login(result.returncode == 0, result.stderr, time.monotonic() - started)
