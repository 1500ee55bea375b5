"""The CA key files: make, read, rotate and retire the keys the CA signs with and trusts.

Up to three files side by side (docs/certificates.md, "The CA key files"):

- `KEY_FILE` (`GPUCLOUD_SSH_CA_KEY_FILE`): the signing key, an Ed25519 private key in
  OpenSSH format (`ssh-keygen -y -f KEY_FILE` reads it), mode 0600, no passphrase: the
  server reads it unattended.
- `KEY_FILE.next`: the next signing key, made by `ca rotate --prepare`, in the same
  form. It is trusted (listed) at once but signs nothing until `ca rotate` renames it
  over `KEY_FILE`; so instances trust it before the first certificate it signs exists.
- `KEY_FILE.trusted`: the public keys of earlier signing keys that instances must still
  trust, one OpenSSH line each, newest first. Public, but nobody else may write it: a
  line added there is a CA that instances trust. Absent until the first rotation.

Every change writes a new file beside the old and renames it into place, so that a
reader sees the old file or the new one, never half of one. A rotation writes the
trusted file first and the key second: between the two renames (or after a crash
there) the old signing key is listed twice, which readers collapse, so no state a
reader can see leaves a key untrusted too early. The commands take an exclusive lock
on the directory, so that two operators rotating at once cannot lose a key.

A retired key's private half is never kept: after a rotation only the public half of
the old key remains (in the trusted file), because trusting needs nothing more and a
private key that is kept can leak.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, overload

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_ssh_private_key,
)

from gpucloud import pubkey
from gpucloud.ca.errors import (
    CAKeyExistsError,
    CAKeyFileError,
    SigningKeyRetireError,
    UnknownCAKeyError,
)

NEXT_SUFFIX: Final = ".next"
TRUSTED_SUFFIX: Final = ".trusted"
COMMENT: Final = "gpucloud-ca"
# An OpenSSH Ed25519 private key is about 400 bytes; anything this large is not one.
_MAX_FILE_BYTES: Final = 64 * 1024
_KEY_MODE: Final = 0o600
_TRUSTED_MODE: Final = 0o644

Role = Literal["signing", "next", "previous"]


@dataclass(frozen=True, slots=True)
class CAPublicKey:
    """One CA public key that instances trust: its OpenSSH line, fingerprint and role.

    `role` is `signing` (signs new certificates), `next` (prepared by `rotate
    --prepare`, signs after the next `rotate`) or `previous` (signed before a rotation;
    trusted until retired).
    """

    line: str
    fingerprint: str
    role: Role

    @property
    def signing(self) -> bool:
        """Whether this key signs new certificates."""
        return self.role == "signing"


@dataclass(frozen=True, slots=True)
class CAKeys:
    """What the key files hold: the signing key, and every public key to trust.

    `public_keys` holds the signing key's, then the next key's if one is prepared, then
    the earlier keys, newest first, each once. The private key is left out of `repr`,
    so that no log line can hold it.
    """

    signing_key: Ed25519PrivateKey = field(repr=False)
    public_keys: tuple[CAPublicKey, ...]

    @property
    def signing(self) -> CAPublicKey:
        """The public half of the signing key."""
        return self.public_keys[0]

    @property
    def next(self) -> CAPublicKey | None:
        """The prepared next signing key, if there is one."""
        return next((key for key in self.public_keys if key.role == "next"), None)

    def trust_list(self) -> str:
        """The keys to trust, one OpenSSH line each, signing key first (`TrustedUserCAKeys`)."""
        return "".join(key.line + "\n" for key in self.public_keys)


def next_file(key_file: Path) -> Path:
    """The file of the prepared next signing key, beside `key_file`."""
    return key_file.with_name(key_file.name + NEXT_SUFFIX)


def trusted_file(key_file: Path) -> Path:
    """The file of earlier public keys, beside `key_file`."""
    return key_file.with_name(key_file.name + TRUSTED_SUFFIX)


def init(key_file: Path) -> CAKeys:
    """Make a new signing key in `key_file` (mode 0600 from the first byte), and return it.

    Raises CAKeyExistsError if the file exists: a CA key is never overwritten, because
    every certificate it signed would stop working. Creates the directory (mode 0700)
    if it is missing.
    """
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(key_file.parent):
        if key_file.exists() or key_file.is_symlink():
            raise _exists(key_file)
        try:
            _write_atomically(key_file, _new_private_key(), _KEY_MODE, replace=False)
        except FileExistsError:
            raise _exists(key_file) from None
        return load(key_file)


def load(key_file: Path) -> CAKeys:
    """The signing key in `key_file` and the public keys to trust.

    Raises CAKeyFileError, with the fix in its message, if the key file (or a prepared
    next key) is missing, not a regular file, readable or writable by group or others,
    or not an unencrypted Ed25519 key in OpenSSH format, or if the trusted file is
    writable by others or malformed.
    """
    signing_key = _read_private_key(key_file, "CA key file")
    keys = [_public(signing_key, "signing")]
    next_key = _read_private_key(next_file(key_file), "next CA key file", required=False)
    if next_key is not None:
        keys.append(_public(next_key, "next"))
    seen = {key.fingerprint for key in keys}
    for line in _trusted_lines(trusted_file(key_file)):
        earlier = CAPublicKey(line, _fingerprint(line), "previous")
        if earlier.fingerprint not in seen:
            seen.add(earlier.fingerprint)
            keys.append(earlier)
    return CAKeys(signing_key=signing_key, public_keys=tuple(keys))


def prepare(key_file: Path) -> CAKeys:
    """Make the next signing key (`KEY_FILE.next`): trusted from now on, signing nothing yet.

    Raises CAKeyExistsError if a next key is prepared already, and CAKeyFileError as
    `load` does.
    """
    with _locked(key_file.parent):
        current = load(key_file)
        if current.next is not None:
            raise _next_exists(current.next)
        try:
            _write_atomically(next_file(key_file), _new_private_key(), _KEY_MODE, replace=False)
        except FileExistsError:  # made by hand meanwhile
            raise _next_exists(load(key_file).next) from None
        return load(key_file)


def rotate(key_file: Path, *, now: dt.datetime | None = None) -> tuple[CAKeys, CAPublicKey]:
    """Make the next key sign (a new one if none is prepared); returns (new keys, old key).

    The old signing key's public half stays trusted, in the trusted file. Raises
    CAKeyFileError as `load` does: only usable keys are rotated.
    """
    with _locked(key_file.parent):
        current = load(key_file)
        old = current.signing
        stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        old_line = f"{_key_part(old.line)} {COMMENT} rotated-out={stamp}"
        kept = [line for line in _raw_lines(key_file) if _names_key(line) != old.fingerprint]
        # The trusted file first: until the key is renamed, the old key is listed twice.
        _write_atomically(trusted_file(key_file), _text([old_line, *kept]), _TRUSTED_MODE)
        if current.next is not None:
            os.replace(next_file(key_file), key_file)
            _fsync_directory(key_file.parent)
        else:
            _write_atomically(key_file, _new_private_key(), _KEY_MODE)
        return load(key_file), CAPublicKey(old_line, old.fingerprint, "previous")


def retire(key_file: Path, fingerprint: str) -> CAPublicKey:
    """Stop trusting the key with this `SHA256:` fingerprint (previous or next); returns it.

    A retired next key is deleted, private half and all. Raises SigningKeyRetireError
    for the signing key (rotate first), UnknownCAKeyError when no trusted key has that
    fingerprint, and CAKeyFileError as `load` does.
    """
    wanted = fingerprint.strip()
    with _locked(key_file.parent):
        current = load(key_file)
        if wanted == current.signing.fingerprint:
            raise SigningKeyRetireError(
                f"{wanted} is the key that signs new certificates, so it cannot be retired; "
                "run `gpucloud ca rotate` to make a new signing key, wait until the "
                "certificates the old one signed have expired (at most the longest "
                "validity, GPUCLOUD_SSH_CERT_MAX_VALIDITY), then retire the old key"
            )
        retired = next((k for k in current.public_keys[1:] if k.fingerprint == wanted), None)
        if retired is None:
            raise UnknownCAKeyError(
                f"No trusted CA key has the fingerprint {wanted!r}; `gpucloud ca show` lists "
                "them (copy the SHA256:… of a key that is not signing)"
            )
        if retired.role == "next":
            next_file(key_file).unlink()
            _fsync_directory(key_file.parent)
        else:
            kept = [line for line in _raw_lines(key_file) if _names_key(line) != wanted]
            _write_atomically(trusted_file(key_file), _text(kept), _TRUSTED_MODE)
        return retired


def _public(key: Ed25519PrivateKey, role: Role) -> CAPublicKey:
    raw = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode("ascii")
    line = f"{raw} {COMMENT}" if role == "signing" else f"{raw} {COMMENT} {role}"
    return CAPublicKey(line, _fingerprint(line), role)


@overload
def _read_private_key(path: Path, label: str) -> Ed25519PrivateKey: ...
@overload
def _read_private_key(path: Path, label: str, *, required: bool) -> Ed25519PrivateKey | None: ...
def _read_private_key(path: Path, label: str, *, required: bool = True) -> Ed25519PrivateKey | None:
    """The Ed25519 key in `path`, or None if it is missing and not `required`."""
    data = _read_protected(path, label, required=required)
    if data is None:
        return None
    fix = f"move it aside and make a new one with `gpucloud ca init --key-file {path}`"
    try:
        key = load_ssh_private_key(data, password=None)
    except TypeError:
        # cryptography says "password-protected" this way; its message holds no key data.
        raise CAKeyFileError(
            f"The {label} {path} is protected by a passphrase, but the server must "
            f"read it unattended; remove the passphrase with ssh-keygen -p -N '' -f {path} "
            "and protect the file by its permissions (chmod 600) instead"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CAKeyFileError(
            f"The {label} {path} is not an OpenSSH private key (a file that starts "
            f"with -----BEGIN OPENSSH PRIVATE KEY-----); {fix}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CAKeyFileError(
            f"The {label} {path} holds a key that is not Ed25519, and gpucloud signs "
            f"with Ed25519 keys only; {fix}, and put the old key's public line (ssh-keygen -y "
            f"-f OLD) in {trusted_file(path)}, so that instances trust both while you switch"
        )
    return key


def _read_protected(path: Path, label: str, *, required: bool) -> bytes | None:
    """The file's bytes, if it is a regular file that only its owner can use.

    A missing file is a CAKeyFileError if `required`, else None.
    """
    try:
        # O_NOFOLLOW is not used: secret stores (Kubernetes among them) mount files as
        # links, and the mode checked is the target's, read through this very descriptor.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not required:
            return None
        raise CAKeyFileError(
            f"The {label} {path} does not exist; create it with "
            f"`gpucloud ca init --key-file {path}`, or point GPUCLOUD_SSH_CA_KEY_FILE "
            "at the file the other replicas use"
        ) from None
    except OSError as exc:
        raise CAKeyFileError(
            f"The {label} {path} cannot be opened ({exc.strerror}); let the user "
            "that runs gpucloud read it, and nobody else"
        ) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CAKeyFileError(f"The {label} {path} is not a regular file")
        if info.st_mode & 0o077:
            raise CAKeyFileError(
                f"The {label} {path} can be read or written by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}), so it is not used; run chmod 600 {path}, "
                "then, if others may have read it, replace it: `gpucloud ca rotate`, and "
                "`gpucloud ca retire` the old key once instances trust the new one"
            )
        data = file.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise CAKeyFileError(f"The {label} {path} is too large to be an SSH key")
    return data


def _trusted_lines(path: Path) -> list[str]:
    """The trusted file's key lines, checked; [] if there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CAKeyFileError(
            f"The trusted CA keys file {path} cannot be read ({exc.strerror})"
        ) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if info.st_mode & 0o022:
            raise CAKeyFileError(
                f"The trusted CA keys file {path} can be written by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}), and a key written there would be trusted "
                f"by every instance; run chmod 644 {path} and check its lines"
            )
        data = file.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise CAKeyFileError(f"The trusted CA keys file {path} is too large")
    lines = []
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            lines.append(pubkey.parse_public_key(line).openssh)
        except pubkey.PublicKeyError as exc:
            raise CAKeyFileError(
                f"Line {number} of the trusted CA keys file {path} is not a public key "
                f"({exc.message}); correct or remove it"
            ) from None
    return lines


def _raw_lines(key_file: Path) -> list[str]:
    """The trusted file's lines as written (comments kept), for rewriting it."""
    try:
        return trusted_file(key_file).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _names_key(line: str) -> str | None:
    """The fingerprint of the key on a trusted-file line; None for blanks and comments."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return _fingerprint(stripped)


def _fingerprint(line: str) -> str:
    return pubkey.parse_public_key(line).fingerprint_sha256


def _key_part(line: str) -> str:
    """`TYPE BASE64` of an OpenSSH line, without its comment."""
    key_type, data = line.split()[:2]
    return f"{key_type} {data}"


def _new_private_key() -> bytes:
    """A new Ed25519 private key in OpenSSH format, unencrypted."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())


def _text(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _next_exists(prepared: CAPublicKey | None) -> CAKeyExistsError:
    named = f" ({prepared.fingerprint})" if prepared else ""
    return CAKeyExistsError(
        f"A next signing key is prepared already{named}; run `gpucloud ca rotate` to make it "
        "sign, or `gpucloud ca retire` it to prepare another"
    )


def _exists(key_file: Path) -> CAKeyExistsError:
    return CAKeyExistsError(
        f"{key_file} already exists, and a CA key is never overwritten (every certificate "
        "it signed would stop working); to change keys, run `gpucloud ca rotate`, or "
        "choose another file with --key-file"
    )


def _write_atomically(path: Path, data: bytes, mode: int, *, replace: bool = True) -> None:
    """Put `data` at `path` by renaming a finished file over it; `mode` from the start.

    With `replace=False` the finished file is linked into place instead, which raises
    FileExistsError if `path` exists: no check-then-write window.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # Created with its final mode: a private key is never readable by others, even for
    # the instant between creating the file and writing it.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; set exactly these
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
            temporary.unlink()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on `directory`, held by one `ca` command at a time.

    Without the directory there is nothing to protect (reading the key will say what is
    missing); where directories cannot be locked (some network file systems), the
    commands run unlocked: the lock only keeps two operators' rotations apart.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
