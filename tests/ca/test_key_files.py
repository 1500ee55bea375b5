"""The CA key files: made safely, refused when unsafe, rotated and retired in order."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from gpucloud.ca import (
    CAKeyExistsError,
    CAKeyFileError,
    SigningKeyRetireError,
    UnknownCAKeyError,
    keys,
)
from tests.ca.conftest import fingerprint_of, public_key_of
from tests.support.keygen import SSH_KEYGEN


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fingerprints(key_file: Path) -> list[str]:
    return [key.fingerprint for key in keys.load(key_file).public_keys]


def test_init_writes_an_ed25519_openssh_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    """If `init` runs, then the file is 0600 and ssh-keygen -y derives the key it reports."""
    key_file = tmp_path / "etc" / "ssh_ca"
    made = keys.init(key_file)
    assert mode_of(key_file) == 0o600
    assert key_file.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    derived = public_key_of(key_file)
    assert derived.startswith("ssh-ed25519 ")
    assert made.signing.line.startswith(derived + " ")
    assert made.signing.fingerprint == fingerprint_of(tmp_path, derived)
    assert made.trust_list() == made.signing.line + "\n"
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["ssh_ca"]  # no temporary left


def test_the_key_files_get_their_modes_whatever_the_umask(tmp_path: Path) -> None:
    """If the umask would leave files open to others, then the key is 0600 all the same."""
    previous = os.umask(0)
    try:
        keys.init(tmp_path / "ssh_ca")
        keys.rotate(tmp_path / "ssh_ca")
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "ssh_ca") == 0o600
    assert mode_of(tmp_path / "ssh_ca.trusted") == 0o644


def test_init_refuses_to_overwrite_an_existing_file(key_file: Path) -> None:
    """If the key file exists, then init refuses, says how to rotate, and leaves it as it was."""
    before = key_file.read_bytes()
    with pytest.raises(CAKeyExistsError, match=r"never overwritten.*gpucloud ca rotate"):
        keys.init(key_file)
    assert key_file.read_bytes() == before


def test_init_refuses_a_dangling_link_in_place_of_the_file(tmp_path: Path) -> None:
    """If the path is a link to nowhere, then init refuses instead of writing through it."""
    (tmp_path / "ssh_ca").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CAKeyExistsError):
        keys.init(tmp_path / "ssh_ca")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_key_file_open_to_others_is_refused_with_chmod_600(key_file: Path, mode: int) -> None:
    """If the key file can be read or written by group or others, then it is not used."""
    key_file.chmod(mode)
    with pytest.raises(CAKeyFileError) as refused:
        keys.load(key_file)
    assert f"chmod 600 {key_file}" in refused.value.message
    assert f"{mode:04o}" in refused.value.message


def test_a_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    """If the key file does not exist, then the error names it and `gpucloud ca init`."""
    with pytest.raises(CAKeyFileError, match=r"does not exist.*gpucloud ca init"):
        keys.load(tmp_path / "nothing")


def test_a_key_with_a_passphrase_is_refused_with_the_command_that_removes_it(
    tmp_path: Path,
) -> None:
    """If the key file is encrypted, then the error says the server cannot type a passphrase."""
    path = tmp_path / "ssh_ca"
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "correct horse", "-f", str(path)], check=True
    )
    with pytest.raises(CAKeyFileError, match=r"passphrase.*ssh-keygen -p"):
        keys.load(path)


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    """If the key file holds an RSA key, then the error says the CA signs with Ed25519 only."""
    path = tmp_path / "ssh_ca"
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(path)], check=True
    )
    with pytest.raises(CAKeyFileError, match="not Ed25519"):
        keys.load(path)


@pytest.mark.parametrize(
    "content", [b"", b"not a key\n", b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n"]
)
def test_a_file_that_is_not_an_openssh_key_is_refused(tmp_path: Path, content: bytes) -> None:
    """If the key file is not an OpenSSH private key, then the error says what it must be."""
    path = tmp_path / "ssh_ca"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(CAKeyFileError, match="BEGIN OPENSSH PRIVATE KEY"):
        keys.load(path)


def test_a_key_made_by_ssh_keygen_is_a_usable_ca_key(tmp_path: Path) -> None:
    """If an operator makes the key with ssh-keygen -t ed25519, then gpucloud uses it."""
    path = tmp_path / "ssh_ca"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    assert keys.load(path).signing.line.startswith(public_key_of(path))


def test_rotate_makes_a_new_signing_key_and_keeps_the_old_one_trusted(key_file: Path) -> None:
    """If the CA rotates, then the new key signs and is listed first, the old one second."""
    old = keys.load(key_file)
    new, previous = keys.rotate(key_file)
    assert previous.fingerprint == old.signing.fingerprint
    assert fingerprints(key_file) == [new.signing.fingerprint, old.signing.fingerprint]
    assert new.signing.fingerprint != old.signing.fingerprint
    # The key file now holds the new key only: the old private half is gone.
    assert public_key_of(key_file) + " gpucloud-ca" == new.signing.line
    assert mode_of(key_file) == 0o600
    trusted = keys.trusted_file(key_file)
    assert mode_of(trusted) == 0o644
    assert old.signing.line.split()[1] in trusted.read_text()
    assert "rotated-out=" in keys.load(key_file).public_keys[1].line
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["ssh_ca", "ssh_ca.trusted"]


def test_each_rotation_puts_the_newest_keys_first(key_file: Path) -> None:
    """If the CA rotates three times, then the trust list runs from newest to oldest, each once."""
    order = [keys.load(key_file).signing.fingerprint]
    for _ in range(3):
        order.insert(0, keys.rotate(key_file)[0].signing.fingerprint)
    assert fingerprints(key_file) == order
    lines = keys.load(key_file).trust_list().splitlines()
    assert len(lines) == 4 and all(line.startswith("ssh-ed25519 ") for line in lines)


def test_retire_removes_only_the_key_named(key_file: Path) -> None:
    """If an old key is retired, then it leaves the trust list and the others stay in order."""
    first = keys.load(key_file).signing.fingerprint
    second = keys.rotate(key_file)[0].signing.fingerprint
    third = keys.rotate(key_file)[0].signing.fingerprint
    retired = keys.retire(key_file, f"  {second} ")
    assert retired.fingerprint == second
    assert fingerprints(key_file) == [third, first]
    keys.retire(key_file, first)
    assert fingerprints(key_file) == [third]


def test_retire_refuses_the_signing_key_and_says_to_rotate_first(key_file: Path) -> None:
    """If the signing key is named, then retire refuses and says to rotate and wait first."""
    signing = keys.load(key_file).signing.fingerprint
    with pytest.raises(SigningKeyRetireError, match=r"gpucloud ca rotate.*expired"):
        keys.retire(key_file, signing)
    assert fingerprints(key_file) == [signing]


def test_retire_of_an_unknown_fingerprint_points_to_ca_show(key_file: Path) -> None:
    """If no trusted key has the fingerprint, then retire says so and names `gpucloud ca show`."""
    keys.rotate(key_file)
    before = fingerprints(key_file)
    with pytest.raises(UnknownCAKeyError, match="gpucloud ca show"):
        keys.retire(key_file, "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert fingerprints(key_file) == before


def test_a_trusted_file_others_can_write_is_refused(key_file: Path) -> None:
    """If the trusted file is group- or world-writable, then the keys are not used."""
    keys.rotate(key_file)
    keys.trusted_file(key_file).chmod(0o666)
    with pytest.raises(CAKeyFileError, match="chmod 644"):
        keys.load(key_file)


def test_a_malformed_trusted_line_is_refused_with_its_number(key_file: Path) -> None:
    """If a trusted-file line is not a public key, then the error names the line."""
    trusted = keys.trusted_file(key_file)
    trusted.write_text("# earlier CA keys\n\nssh-ed25519 notbase64\n")
    with pytest.raises(CAKeyFileError, match="Line 3 of the trusted CA keys file"):
        keys.load(key_file)


def test_a_key_added_by_hand_to_the_trusted_file_is_trusted_and_kept(
    key_file: Path, tmp_path: Path
) -> None:
    """If an operator adds an older CA's line by hand, then it is trusted and rotations keep it."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "old-ca", "-f", str(tmp_path / "old")],
        check=True,
    )
    old_line = (tmp_path / "old.pub").read_text().strip()
    keys.trusted_file(key_file).write_text(f"# the CA before gpucloud\n{old_line}\n")
    assert keys.load(key_file).public_keys[1].line == old_line
    keys.rotate(key_file)
    listed = [k.line for k in keys.load(key_file).public_keys]
    assert listed[2] == old_line and len(listed) == 3
    assert keys.trusted_file(key_file).read_text().count("# the CA before gpucloud") == 1


def test_a_crash_between_the_two_renames_of_a_rotation_leaves_every_key_trusted(
    key_file: Path,
) -> None:
    """If a rotation stopped after writing the trusted file, then nothing is lost or doubled."""
    old = keys.load(key_file).signing
    # The state between the renames: the old signing key is in the trusted file already.
    keys.trusted_file(key_file).write_text(old.line + "\n")
    assert fingerprints(key_file) == [old.fingerprint]
    new = keys.rotate(key_file)[0]  # the operator runs rotate again
    assert fingerprints(key_file) == [new.signing.fingerprint, old.fingerprint]


def test_prepare_lists_the_next_key_without_letting_it_sign(key_file: Path) -> None:
    """If the next key is prepared, then it is trusted second while the old key still signs."""
    signing = keys.load(key_file).signing
    prepared = keys.prepare(key_file)
    assert prepared.next is not None
    assert [k.role for k in prepared.public_keys] == ["signing", "next"]
    assert prepared.signing == signing
    assert mode_of(keys.next_file(key_file)) == 0o600
    assert public_key_of(keys.next_file(key_file)) in prepared.next.line
    assert public_key_of(key_file) in signing.line  # the key file is untouched


def test_rotate_makes_the_prepared_key_sign(key_file: Path) -> None:
    """If a next key is prepared, then rotate makes exactly that key sign and keeps the old one."""
    old = keys.load(key_file).signing
    upcoming = keys.prepare(key_file).next
    assert upcoming is not None
    new, previous = keys.rotate(key_file)
    assert new.signing.fingerprint == upcoming.fingerprint
    assert previous.fingerprint == old.fingerprint
    assert [(k.fingerprint, k.role) for k in new.public_keys] == [
        (upcoming.fingerprint, "signing"),
        (old.fingerprint, "previous"),
    ]
    assert not keys.next_file(key_file).exists()
    assert mode_of(key_file) == 0o600


def test_a_second_prepare_is_refused_naming_the_prepared_key(key_file: Path) -> None:
    """If a next key is prepared already, then prepare refuses and names it."""
    upcoming = keys.prepare(key_file).next
    assert upcoming is not None
    with pytest.raises(CAKeyExistsError, match=re.escape(upcoming.fingerprint)):
        keys.prepare(key_file)
    assert keys.load(key_file).next == upcoming


def test_retiring_the_prepared_key_deletes_it(key_file: Path) -> None:
    """If the prepared next key is retired, then its file is gone and the list is as before."""
    before = fingerprints(key_file)
    upcoming = keys.prepare(key_file).next
    assert upcoming is not None
    assert keys.retire(key_file, upcoming.fingerprint).role == "next"
    assert not keys.next_file(key_file).exists()
    assert fingerprints(key_file) == before


def test_a_prepared_key_open_to_others_is_refused(key_file: Path) -> None:
    """If the next key's file is readable by others, then the keys are not used, with chmod 600."""
    keys.prepare(key_file)
    keys.next_file(key_file).chmod(0o644)
    with pytest.raises(CAKeyFileError, match=re.escape(f"chmod 600 {keys.next_file(key_file)}")):
        keys.load(key_file)
