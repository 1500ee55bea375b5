"""Certificates signed by the CA, read back by the real `ssh-keygen -L`."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from pathlib import Path

import pytest

from gpucloud.ca import (
    EXTENSIONS,
    CertificateAuthority,
    PrincipalError,
    UncertifiableKeyError,
    ValidityError,
    ValidityPolicy,
    keys,
    principal_for,
)
from tests.ca.conftest import read_certificate
from tests.support.keygen import ACCEPTED_KINDS, SSH_KEYGEN, KeyCorpus

NOW = dt.datetime(2030, 5, 17, 12, 0, 0, 250000, tzinfo=dt.UTC)
KEY_ID = "6650f1c2a1b2c3d4e5f60718"

# What `ssh-keygen -L` names each kind's certificate.
CERTIFICATE_TYPES = {
    "ed25519": "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa256": "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa384": "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa521": "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa2048": "ssh-rsa-cert-v01@openssh.com",
    "rsa4096": "ssh-rsa-cert-v01@openssh.com",
    "sk-ed25519": "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa256": "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
}


def authority(key_file: Path, default: str = "8h", maximum: str = "24h") -> CertificateAuthority:
    return CertificateAuthority(key_file, policy=ValidityPolicy.parse(default, maximum))


@pytest.mark.parametrize("kind", ACCEPTED_KINDS)
def test_ssh_keygen_reads_back_every_field_for_every_accepted_key_type(
    kind: str, key_corpus: KeyCorpus, key_file: Path, tmp_path: Path
) -> None:
    """If any key type the API accepts is certified, then ssh-keygen -L agrees on every field."""
    key = key_corpus.keys[kind]
    issued = authority(key_file).certify(
        key.public_line, owner="alice", key_id=KEY_ID, valid_for="8h", now=NOW
    )
    read = read_certificate(tmp_path, issued.certificate)

    assert read.type == f"{CERTIFICATE_TYPES[kind]} user certificate"
    assert issued.certificate.startswith(CERTIFICATE_TYPES[kind] + " AAAA")
    assert read.principals == ("alice",) == issued.principals
    assert read.valid_from == "2030-05-17T11:59:00"  # a minute before now, to the second
    assert read.valid_to == "2030-05-17T20:00:00"
    assert issued.valid_after == dt.datetime(2030, 5, 17, 11, 59, tzinfo=dt.UTC)
    assert issued.valid_before == dt.datetime(2030, 5, 17, 20, 0, tzinfo=dt.UTC)
    assert read.serial == issued.serial
    assert (
        read.key_id == issued.key_id == f"gpucloud:owner=alice:key={KEY_ID}:serial={issued.serial}"
    )
    assert read.signing_ca == keys.load(key_file).signing.fingerprint
    assert read.critical_options == ()
    assert read.extensions == EXTENSIONS
    assert sorted(read.extensions) == sorted(
        [
            "permit-pty",
            "permit-agent-forwarding",
            "permit-port-forwarding",
            "permit-X11-forwarding",
            "permit-user-rc",
        ]
    )


@pytest.mark.parametrize("kind", ["ed25519", "sk-ed25519"])
def test_the_certificate_is_of_the_registered_key_and_keeps_its_comment(
    kind: str, key_corpus: KeyCorpus, key_file: Path, tmp_path: Path
) -> None:
    """If a key is certified, then the certificate's key is that key, and its comment follows."""
    key = key_corpus.keys[kind]
    issued = authority(key_file).certify(key.public_line, owner="alice", key_id=KEY_ID)
    read = read_certificate(tmp_path, issued.certificate)
    fingerprint = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(key.public_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert read.public_key.split()[1] == fingerprint
    assert issued.certificate.endswith(f" {kind}@gpucloud-test")


@pytest.mark.parametrize("kind", ["ed25519", "sk-ed25519", "rsa2048"])
def test_a_certificate_altered_after_signing_is_refused_by_ssh_keygen(
    kind: str, key_corpus: KeyCorpus, key_file: Path, tmp_path: Path
) -> None:
    """If one bit of a certificate changes, then ssh-keygen refuses its signature."""
    issued = authority(key_file).certify(
        key_corpus.keys[kind].public_line, owner="alice", key_id=KEY_ID
    )
    cert_type, data = issued.certificate.split()[:2]
    blob = bytearray(base64.b64decode(data))
    blob[-10] ^= 0x01
    path = tmp_path / "altered-cert.pub"
    path.write_text(f"{cert_type} {base64.b64encode(bytes(blob)).decode()}\n")
    result = subprocess.run([SSH_KEYGEN, "-L", "-f", str(path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "signature" in result.stderr


def test_serials_are_random_64_bit_numbers_written_in_decimal(
    key_corpus: KeyCorpus, key_file: Path
) -> None:
    """If many certificates are signed, then their serials differ, fit 64 bits and are not 0."""
    ca = authority(key_file)
    line = key_corpus.keys["ed25519"].public_line
    serials = [ca.certify(line, owner="alice", key_id=KEY_ID).serial for _ in range(200)]
    assert len(set(serials)) == 200
    assert all(s.isdigit() and 0 < int(s) < 2**64 for s in serials)
    assert max(int(s) for s in serials) > 2**60  # drawn from the whole range


def test_without_valid_for_the_default_validity_applies(
    key_corpus: KeyCorpus, key_file: Path, tmp_path: Path
) -> None:
    """If no validFor is given, then the certificate lasts the configured default."""
    issued = authority(key_file, default="2h").certify(
        key_corpus.keys["ed25519"].public_line, owner="alice", key_id=KEY_ID, now=NOW
    )
    assert read_certificate(tmp_path, issued.certificate).valid_to == "2030-05-17T14:00:00"


@pytest.mark.parametrize(
    ("valid_for", "seconds"),
    [("30s", 30), ("15m", 900), ("8h", 28800), ("24h", 86400), ("1d", 86400)],
)
def test_validities_from_30_seconds_to_the_maximum_are_granted(
    valid_for: str, seconds: int, key_corpus: KeyCorpus, key_file: Path
) -> None:
    """If validFor is within 30s and the maximum, then the certificate lasts exactly that."""
    issued = authority(key_file).certify(
        key_corpus.keys["ed25519"].public_line,
        owner="alice",
        key_id=KEY_ID,
        valid_for=valid_for,
        now=NOW,
    )
    assert issued.valid_before - issued.valid_after == dt.timedelta(seconds=seconds + 60)


@pytest.mark.parametrize("valid_for", ["29s", "25h", "2d", "soon", "", "8 h", "-1h", "0s", "8H"])
def test_validities_out_of_range_or_unreadable_are_refused_naming_the_range(
    valid_for: str, key_corpus: KeyCorpus, key_file: Path
) -> None:
    """If validFor is unreadable, under 30s or over the maximum, then a 400 names the range."""
    with pytest.raises(ValidityError) as refused:
        authority(key_file).certify(
            key_corpus.keys["ed25519"].public_line,
            owner="alice",
            key_id=KEY_ID,
            valid_for=valid_for,
        )
    assert "from 30s to 24h" in refused.value.message
    assert refused.value.message.startswith("validFor")
    assert [d.field for d in refused.value.details] == ["validFor"]


def test_the_configured_maximum_is_the_upper_bound(key_corpus: KeyCorpus, key_file: Path) -> None:
    """If the maximum is set to 1h, then 2h is refused with 1h in the message, and 1h works."""
    ca = authority(key_file, default="30m", maximum="1h")
    line = key_corpus.keys["ed25519"].public_line
    with pytest.raises(ValidityError, match="from 30s to 1h"):
        ca.certify(line, owner="alice", key_id=KEY_ID, valid_for="2h")
    assert ca.certify(line, owner="alice", key_id=KEY_ID, valid_for="1h").serial


@pytest.mark.parametrize(
    ("default", "maximum", "named"),
    [
        ("8h", "soon", "GPUCLOUD_SSH_CERT_MAX_VALIDITY"),
        ("later", "24h", "GPUCLOUD_SSH_CERT_DEFAULT_VALIDITY"),
        ("48h", "24h", "the default 2d and the maximum 24h"),
        ("10s", "24h", "30s"),
    ],
)
def test_inconsistent_validity_settings_are_refused_at_start(
    default: str, maximum: str, named: str
) -> None:
    """If the validity settings are unreadable or contradict, then building the policy fails."""
    with pytest.raises(ValueError, match=named):
        ValidityPolicy.parse(default, maximum)


@pytest.mark.parametrize(
    "owner", ["alice", "alice@example.com", "a.b_c+d-e", "Bob42", "x" * 128, "_svc"]
)
def test_owner_names_that_sshd_matches_exactly_are_principals(owner: str) -> None:
    """If the owner's name is plain ASCII without separators, then it is the principal."""
    assert principal_for(owner) == owner


@pytest.mark.parametrize(
    "owner",
    [
        "",
        "alice smith",
        "alice,root",
        "#alice",
        "alice#x",
        "-alice",
        "josé",
        "a\tb",
        "ali\nce",
        "x" * 129,
        "alice*",
        "a=b:c",
    ],
)
def test_owner_names_sshd_would_misread_are_refused_with_the_rule(
    owner: str, key_corpus: KeyCorpus, key_file: Path
) -> None:
    """If the owner's name holds separators, non-ASCII or too many characters, then a 400 says why."""
    with pytest.raises(PrincipalError) as refused:
        authority(key_file).certify(
            key_corpus.keys["ed25519"].public_line, owner=owner, key_id=KEY_ID
        )
    message = refused.value.message
    assert "cannot be an SSH certificate principal" in message
    assert "ASCII letters, digits" in message and "AuthorizedKeysCommand" in message


def test_a_certificate_never_outlives_the_key_it_certifies(
    key_corpus: KeyCorpus, key_file: Path, tmp_path: Path
) -> None:
    """If the key expires before now + validFor, then the certificate ends when the key does."""
    issued = authority(key_file).certify(
        key_corpus.keys["ed25519"].public_line,
        owner="alice",
        key_id=KEY_ID,
        valid_for="8h",
        key_expires_at=NOW + dt.timedelta(hours=2, microseconds=1),
        now=NOW,
    )
    assert read_certificate(tmp_path, issued.certificate).valid_to == "2030-05-17T14:00:00"


def test_an_expired_key_is_not_certified(key_corpus: KeyCorpus, key_file: Path) -> None:
    """If the key has expired, then certifying it is a 400 that says how to go on."""
    with pytest.raises(UncertifiableKeyError, match=r"expired.*expiresAt"):
        authority(key_file).certify(
            key_corpus.keys["ed25519"].public_line,
            owner="alice",
            key_id=KEY_ID,
            key_expires_at=NOW,
            now=NOW,
        )
