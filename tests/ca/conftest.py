"""Fixtures of the CA tests: a fresh CA key file per test, and `ssh-keygen -L` read back.

Every certificate is checked by the real `ssh-keygen`, which also verifies the CA's
signature over it: a certificate it prints is one that OpenSSH accepts as well formed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpucloud.ca import keys
from tests.support.keygen import SSH_KEYGEN
from tests.support.server import GPUCLOUD

RunCA = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A new CA key file (made by `keys.init`) in a directory of this test's own."""
    path = tmp_path / "ca" / "ssh_ca"
    keys.init(path)
    return path


@pytest.fixture
def run_ca(tmp_path: Path) -> RunCA:
    """Run `gpucloud ca …` as a real process, with no GPUCLOUD_ variable of the shell.

    `env` adds variables; `check=False` allows a non-zero exit.
    """

    def run(
        *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
        result = subprocess.run(
            [GPUCLOUD, "ca", *args],
            env={**base, "HOME": str(tmp_path), **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"gpucloud ca {' '.join(args)} exited {result.returncode}: {result.stderr}"
            )
        return result

    return run


@dataclass(frozen=True)
class ReadCertificate:
    """What `ssh-keygen -L` (TZ=UTC) prints about a certificate."""

    type: str
    public_key: str
    signing_ca: str
    key_id: str
    serial: str
    valid_from: str
    valid_to: str
    principals: tuple[str, ...]
    critical_options: tuple[str, ...]
    extensions: tuple[str, ...]


def read_certificate(directory: Path, certificate: str) -> ReadCertificate:
    """The certificate line as `ssh-keygen -L` reads it; fails if ssh-keygen refuses it."""
    path = directory / "read-cert.pub"
    path.write_text(certificate + "\n")
    result = subprocess.run(
        [SSH_KEYGEN, "-L", "-f", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC"},
        check=False,
    )
    assert result.returncode == 0, f"ssh-keygen -L refused the certificate: {result.stderr}"
    fields: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in result.stdout.splitlines()[1:]:
        line = raw.strip()
        match = re.fullmatch(r"([A-Za-z ]+): ?(.*)", line)
        if match and raw.startswith("        ") and not raw.startswith("                "):
            name, value = match.groups()
            fields[name] = value
            current = lists.setdefault(name, []) if value in ("", "(none)") else None
        elif current is not None and line:
            current.append(line)
    valid = re.fullmatch(r"from (\S+) to (\S+)", fields["Valid"])
    assert valid is not None, fields["Valid"]
    signing = re.fullmatch(r"\S+ (SHA256:\S+) \(using \S+\)", fields["Signing CA"])
    assert signing is not None, fields["Signing CA"]
    return ReadCertificate(
        type=fields["Type"],
        public_key=fields["Public key"],
        signing_ca=signing.group(1),
        key_id=fields["Key ID"].strip('"'),
        serial=fields["Serial"],
        valid_from=valid.group(1),
        valid_to=valid.group(2),
        principals=tuple(lists.get("Principals", [])),
        critical_options=tuple(lists.get("Critical Options", [])),
        extensions=tuple(lists.get("Extensions", [])),
    )


def public_key_of(key_file: Path) -> str:
    """What `ssh-keygen -y` derives from the key file: `TYPE BASE64` (with no comment)."""
    result = subprocess.run(
        [SSH_KEYGEN, "-y", "-f", str(key_file)], capture_output=True, text=True, check=True
    )
    return " ".join(result.stdout.split()[:2])


def fingerprint_of(tmp_path: Path, public_line: str) -> str:
    """The SHA256 fingerprint `ssh-keygen -l` prints for a public key line."""
    path = tmp_path / "fingerprint.pub"
    path.write_text(public_line + "\n")
    result = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()[1]
