"""`gpucloud ssh-keys certify`: the certificate lands where `ssh` looks for it, and says so."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

from gpucloud.client import Client
from tests.ca.conftest import read_certificate
from tests.cli.conftest import RunCLI
from tests.support.keygen import SSH_KEYGEN


def make_ssh_key(home: Path, name: str = "id_ed25519", comment: str = "ada@laptop") -> Path:
    """A key pair made by ssh-keygen as HOME/.ssh/NAME and NAME.pub; returns the private path."""
    path = home / ".ssh" / name
    path.parent.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True
    )
    return path


def test_certify_writes_the_certificate_beside_the_matching_pub_file(
    run: RunCLI, api: Client, home: Path, tmp_path: Path
) -> None:
    """If a key is certified by name, then `<key>-cert.pub` appears beside the ~/.ssh .pub
    file of the same fingerprint (not beside another key's), 0644, and the command says
    where and until when."""
    make_ssh_key(home, "id_rsa_named_oddly", comment="other")
    private = make_ssh_key(home)
    key = api.create_ssh_key(name="laptop", public_key=private.with_suffix(".pub").read_text())
    result = run("ssh-keys", "certify", "laptop", "--valid-for", "2h")
    assert result.returncode == 0, result.stderr
    written = home / ".ssh" / "id_ed25519-cert.pub"
    assert not (home / ".ssh" / "id_rsa_named_oddly-cert.pub").exists()
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    read = read_certificate(tmp_path, written.read_text().strip())
    assert read.public_key.split()[1] == key.fingerprint
    until = re.search(r"valid until (\S+ \S+) UTC \(in 2h 0m\)", result.stdout)
    assert until is not None, result.stdout
    assert until.group(1).replace(" ", "T") == read.valid_to
    assert str(written) in result.stdout
    assert f"ssh -i {private} HOST" in result.stdout


def test_certify_by_fingerprint_to_stdout_or_a_named_file(
    run: RunCLI, api: Client, home: Path, tmp_path: Path
) -> None:
    """If --output is - or a file, then the certificate goes there (and the message to
    stderr for -), whatever ~/.ssh holds."""
    private = make_ssh_key(tmp_path, "elsewhere")
    key = api.create_ssh_key(name="laptop", public_key=private.with_suffix(".pub").read_text())
    assert key.fingerprint is not None
    printed = run("ssh-keys", "certify", key.fingerprint, "--output", "-")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("ssh-ed25519-cert-v01@openssh.com ")
    assert printed.stdout.count("\n") == 1
    assert "valid until" in printed.stderr
    target = tmp_path / "my-cert.pub"
    named = run("ssh-keys", "certify", key.id, "-o", str(target), "--valid-for", "30s")
    assert named.returncode == 0, named.stderr
    assert read_certificate(tmp_path, target.read_text().strip()).serial


def test_certify_without_a_matching_pub_file_says_what_to_do_and_signs_nothing(
    run: RunCLI, api: Client, home: Path, tmp_path: Path
) -> None:
    """If no ~/.ssh/*.pub holds the key, then the command exits 1 naming the fingerprint
    and --output, and writes nothing."""
    make_ssh_key(home)  # another key
    private = make_ssh_key(tmp_path, "elsewhere")
    key = api.create_ssh_key(name="laptop", public_key=private.with_suffix(".pub").read_text())
    result = run("ssh-keys", "certify", "laptop")
    assert result.returncode == 1
    assert str(key.fingerprint) in result.stderr and "--output" in result.stderr
    assert not list((home / ".ssh").glob("*-cert.pub"))


def test_certify_refusals_are_one_line_with_the_servers_reason(
    run: RunCLI, api: Client, home: Path
) -> None:
    """If the validity is out of range or the key unknown, then the command exits 1 with
    the API's message."""
    private = make_ssh_key(home)
    api.create_ssh_key(name="laptop", public_key=private.with_suffix(".pub").read_text())
    too_long = run("ssh-keys", "certify", "laptop", "--valid-for", "3d")
    assert too_long.returncode == 1
    assert "from 30s to 24h" in too_long.stderr
    unknown = run("ssh-keys", "certify", "desktop")
    assert unknown.returncode == 1
    assert 'no SSH key named "desktop"' in unknown.stderr
