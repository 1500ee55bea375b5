"""Sign OpenSSH user certificates: the principal rule, the validity rule, the signature.

Pure functions over a CA key and a registered public key; no files, no web, no database.

A certificate (SPEC 11) is valid from a minute before now (clock skew between this
server and the instances) until now + the validity, never past the key's own expiry;
it carries the usual extensions (`permit-pty`, `permit-agent-forwarding`,
`permit-port-forwarding`, `permit-X11-forwarding`, `permit-user-rc`), no critical
options, a random 64-bit serial, one principal (the owner's name) and a key id that
names the owner, the key and the serial.

`cryptography`'s SSHCertificateBuilder signs every type it knows: Ed25519, ECDSA and
RSA. It has no FIDO (`sk-`) types: it reads an sk public key as the plain key inside,
and a certificate of that would name another key type, which the FIDO key cannot sign
for. Those two types are encoded here, field for field as the builder does
(PROTOCOL.certkeys of OpenSSH), from the same fields; `ssh-keygen -L` checks both.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import struct
from dataclasses import dataclass
from typing import Final, NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificateBuilder,
    SSHCertificateType,
    load_ssh_public_key,
)

from gpucloud import pubkey
from gpucloud.ca.errors import PrincipalError, UncertifiableKeyError, ValidityError
from gpucloud.errors import FieldProblem, InvalidInputError

EXTENSIONS: Final = (
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
)
CLOCK_SKEW: Final = dt.timedelta(minutes=1)
MIN_VALIDITY: Final = dt.timedelta(seconds=30)
PRINCIPAL_MAX_CHARS: Final = 128

# What a principal may be. sshd compares it byte for byte with the lines of an
# AuthorizedPrincipalsFile (where `#` starts a comment and a space separates options
# from the name) and with `principals="a,b"` lists (where a comma separates names, so
# that a principal "alice,root" would match "root"). ASCII only: the bytes an operator
# types into that file must be the bytes in the certificate, and Unicode has several
# encodings of the same visible name. No leading "-": such a name reads as an option
# to the commands that handle it.
_PRINCIPAL: Final = re.compile(r"[A-Za-z0-9_.@+][A-Za-z0-9_.@+-]*")

_SK_TYPES: Final = frozenset({"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"})


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A signed certificate and what it says, for the API's answer and the audit log.

    `certificate` is the OpenSSH line (`TYPE-cert-v01@openssh.com AAAA… comment`), as
    `ssh` reads it from a `*-cert.pub` file; `serial` is the decimal serial (a string,
    because 64-bit numbers do not survive JavaScript); the times are whole UTC seconds.
    """

    certificate: str
    serial: str
    key_id: str
    principals: tuple[str, ...]
    valid_after: dt.datetime
    valid_before: dt.datetime


@dataclass(frozen=True, slots=True)
class ValidityPolicy:
    """How long a certificate may be valid: a default, and a maximum of at least 30 s."""

    default: dt.timedelta
    maximum: dt.timedelta

    def __post_init__(self) -> None:
        if not MIN_VALIDITY <= self.default <= self.maximum:
            raise ValueError(
                "GPUCLOUD_SSH_CERT_DEFAULT_VALIDITY must be from 30s up to "
                f"GPUCLOUD_SSH_CERT_MAX_VALIDITY; got the default {format_duration(self.default)} "
                f"and the maximum {format_duration(self.maximum)}"
            )

    @classmethod
    def parse(cls, default: str, maximum: str) -> ValidityPolicy:
        """The policy of the two settings (`8h`, `24h`); raises ValueError, naming the bad one."""
        values = []
        for name, text in (
            ("GPUCLOUD_SSH_CERT_DEFAULT_VALIDITY", default),
            ("GPUCLOUD_SSH_CERT_MAX_VALIDITY", maximum),
        ):
            try:
                values.append(_parse_duration(text))
            except InvalidInputError as exc:
                raise ValueError(f"{name}: {exc.message}") from None
        return cls(default=values[0], maximum=values[1])

    def resolve(self, valid_for: str | None) -> dt.timedelta:
        """The validity a request asks for (`30m`, `8h`, …; None for the default).

        Raises ValidityError, naming the allowed range, if it cannot be read or is
        shorter than 30 s or longer than the maximum.
        """
        if valid_for is None:
            return self.default
        allowed = (
            f"from {format_duration(MIN_VALIDITY)} to {format_duration(self.maximum)}, "
            "such as 30m or 8h"
        )
        try:
            if not isinstance(valid_for, str):
                raise InvalidInputError("not text")
            duration = _parse_duration(valid_for)
        except InvalidInputError:
            problem = f"validFor must be a number and a unit (s, m, h, d), {allowed}"
        else:
            if MIN_VALIDITY <= duration <= self.maximum:
                return duration
            problem = f"validFor is {format_duration(duration)}; it must be {allowed}"
        raise ValidityError(problem, details=[FieldProblem("validFor", problem)])


def _parse_duration(text: str) -> dt.timedelta:
    # The one reader of durations lives with the API keys, whose module also holds
    # database code: imported here, when first needed, so that importing the CA loads
    # no database layer. (In a module of its own, it would be a plain import here.)
    from gpucloud.api_keys.service import parse_duration

    return parse_duration(text)


def format_duration(value: dt.timedelta) -> str:
    """A duration in the form `parse_duration` reads, in its largest whole unit: `24h`, `2d`."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        # A day and a half reads better as 36h; only whole days of two or more are `d`.
        if seconds % size == 0 and (unit != "d" or seconds >= 2 * size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def principal_for(owner: str) -> str:
    """The certificate principal of an owner: its name, if sshd can match it safely.

    Raises PrincipalError, saying which names work, otherwise.
    """
    if len(owner) <= PRINCIPAL_MAX_CHARS and _PRINCIPAL.fullmatch(owner):
        return owner
    raise PrincipalError(
        "This owner's name cannot be an SSH certificate principal: a principal must be 1 to "
        f"{PRINCIPAL_MAX_CHARS} ASCII letters, digits or . _ @ + - (not starting with -), "
        "because sshd compares it byte for byte with AuthorizedPrincipalsFile lines and reads "
        "spaces, commas and # there as separators and comments; use an owner with such a "
        "name, or let instances look keys up (AuthorizedKeysCommand) instead of certificates"
    )


def sign(
    ca_key: Ed25519PrivateKey,
    public_key: str,
    *,
    owner: str,
    key_id: str,
    valid_for: dt.timedelta,
    key_expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> IssuedCertificate:
    """A user certificate of `public_key` (an OpenSSH line, as the API stores it).

    Its principal is `owner`; `key_id` is the SSH key's id, which the certificate's key
    id names. It is valid until now + `valid_for`, or until `key_expires_at` if that is
    sooner. Raises PrincipalError for an owner whose name cannot be a principal,
    UncertifiableKeyError if the key has expired, and InvalidInputError if
    `public_key` is not an acceptable key (the API stores none such).
    """
    principal = principal_for(owner)
    try:
        parsed = pubkey.parse_public_key(public_key)
    except pubkey.PublicKeyError as exc:
        raise InvalidInputError(exc.message) from None
    exact_now = now or dt.datetime.now(dt.UTC)
    if key_expires_at is not None and key_expires_at <= exact_now:
        raise UncertifiableKeyError(
            "This SSH key has expired, so it cannot be certified; give it a later "
            "expiresAt (PATCH the key), or register a new key"
        )
    # Certificates count whole seconds.
    now = exact_now.astimezone(dt.UTC).replace(microsecond=0)
    valid_before = now + valid_for
    if key_expires_at is not None:
        valid_before = min(valid_before, key_expires_at.astimezone(dt.UTC).replace(microsecond=0))
    serial = secrets.randbelow(2**64 - 1) + 1  # never 0: a KRL cannot name serial 0
    fields = _Fields(
        serial=serial,
        key_id=f"gpucloud:owner={principal}:key={key_id}:serial={serial}",
        principal=principal,
        valid_after=int((now - CLOCK_SKEW).timestamp()),
        valid_before=int(valid_before.timestamp()),
    )
    if parsed.key_type in _SK_TYPES:
        body = _sk_certificate(ca_key, parsed, fields)
    else:
        body = _builder_certificate(ca_key, parsed, fields)
    line = f"{body} {parsed.comment}" if parsed.comment else body
    return IssuedCertificate(
        certificate=line,
        serial=str(serial),
        key_id=fields.key_id,
        principals=(principal,),
        valid_after=dt.datetime.fromtimestamp(fields.valid_after, dt.UTC),
        valid_before=dt.datetime.fromtimestamp(fields.valid_before, dt.UTC),
    )


class _Fields(NamedTuple):
    """What a certificate says besides its key; both encoders take these."""

    serial: int
    key_id: str
    principal: str
    valid_after: int
    valid_before: int


def _builder_certificate(
    ca_key: Ed25519PrivateKey, parsed: pubkey.ParsedKey, fields: _Fields
) -> str:
    """`TYPE-cert-v01@openssh.com BASE64`, by cryptography's builder."""
    # Type and data only: the comment may not be ASCII, and is not part of the key.
    subject = load_ssh_public_key(
        parsed.key_type.encode("ascii") + b" " + base64.b64encode(parsed.blob)
    )
    if not isinstance(subject, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | Ed25519PublicKey):
        # Not reached with the types the parser accepts today; a refusal, not a crash,
        # if it ever accepts another.
        raise UncertifiableKeyError(
            f"{parsed.key_type} keys cannot be certified; for certificates, register an "
            "Ed25519 key (ssh-keygen -t ed25519)"
        )
    builder = (
        SSHCertificateBuilder()
        .public_key(subject)
        .serial(fields.serial)
        .type(SSHCertificateType.USER)
        .key_id(fields.key_id.encode("utf-8"))
        .valid_principals([fields.principal.encode("ascii")])
        .valid_after(fields.valid_after)
        .valid_before(fields.valid_before)
    )
    for name in EXTENSIONS:
        builder = builder.add_extension(name.encode("ascii"), b"")
    return builder.sign(ca_key).public_bytes().decode("ascii")


def _sk_certificate(ca_key: Ed25519PrivateKey, parsed: pubkey.ParsedKey, fields: _Fields) -> str:
    """The same certificate for a FIDO key, encoded here (see the module's docstring).

    The layout is the builder's: the certificate type, a 32-byte nonce, the key's own
    fields (for sk keys, the public key and the FIDO application), then the fields
    below, then the CA's public key and its signature over everything before it.
    """
    key_type = parsed.key_type.encode("ascii")
    # The blob is string(type) + the key's fields; the certificate keeps the fields.
    key_fields = parsed.blob[4 + len(key_type) :]
    cert_type = key_type.replace(b"@openssh.com", b"-cert-v01@openssh.com")
    ca_wire = _string(b"ssh-ed25519") + _string(
        ca_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    body = b"".join(
        (
            _string(cert_type),
            _string(secrets.token_bytes(32)),
            key_fields,
            struct.pack(">QI", fields.serial, SSHCertificateType.USER.value),
            _string(fields.key_id.encode("utf-8")),
            _string(_string(fields.principal.encode("ascii"))),
            struct.pack(">QQ", fields.valid_after, fields.valid_before),
            _string(b""),  # critical options: none
            # Extensions, sorted by name; each value is an empty string.
            _string(
                b"".join(_string(n.encode("ascii")) + _string(b"") for n in sorted(EXTENSIONS))
            ),
            _string(b""),  # reserved
            _string(ca_wire),
        )
    )
    signature = _string(b"ssh-ed25519") + _string(ca_key.sign(body))
    blob = body + _string(signature)
    return f"{cert_type.decode('ascii')} {base64.b64encode(blob).decode('ascii')}"


def _string(data: bytes) -> bytes:
    """An SSH wire-format string: a 32-bit length, then the bytes."""
    return struct.pack(">I", len(data)) + data
