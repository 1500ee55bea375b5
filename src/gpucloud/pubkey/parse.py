"""Parse one SSH public key as a user pastes it, and decide whether it is acceptable.

This is the one place that owns SPEC 4 ("What a valid key is") and the canonical
`publicKey` form of SPEC 1. The checks run in this order, so that the most useful
advice wins when several apply:

1. a private key anywhere in the text (it must never be stored or echoed);
2. the size limit;
3. the framing: empty, PEM, an RFC 4716 block, more than one line;
4. the OpenSSH line: the type token; the key data, field by field, with our own strict
   wire reader (for precise messages), which also refuses known-weak RSA moduli (ROCA);
   `cryptography` (for the mathematics: an EC point on its curve, a usable RSA key); and
   last the comment.

Every message is one sentence that tells the user what to do, and none contains any
of the input: only constants of this module and numbers such as a key's size.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Final, NoReturn

from cryptography.hazmat.primitives.serialization import load_ssh_public_identity

from gpucloud.pubkey import rfc4716
from gpucloud.pubkey.errors import PublicKeyError
from gpucloud.pubkey.roca import has_roca_fingerprint
from gpucloud.pubkey.wire import MpintError, TruncatedError, WireReader

MAX_PUBLIC_KEY_BYTES: Final = 16 * 1024

ED25519: Final = "ssh-ed25519"
ECDSA_NISTP256: Final = "ecdsa-sha2-nistp256"
ECDSA_NISTP384: Final = "ecdsa-sha2-nistp384"
ECDSA_NISTP521: Final = "ecdsa-sha2-nistp521"
RSA: Final = "ssh-rsa"
SK_ED25519: Final = "sk-ssh-ed25519@openssh.com"
SK_ECDSA_NISTP256: Final = "sk-ecdsa-sha2-nistp256@openssh.com"
DSA: Final = "ssh-dss"

ACCEPTED_KEY_TYPES: Final[tuple[str, ...]] = (
    ED25519,
    ECDSA_NISTP256,
    ECDSA_NISTP384,
    ECDSA_NISTP521,
    RSA,
    SK_ED25519,
    SK_ECDSA_NISTP256,
)

RSA_MIN_BITS: Final = 2048
RSA_MAX_BITS: Final = 16384

# The SSH curve name inside the blob, and the size in bytes of one coordinate.
_EC_CURVES: Final[dict[str, tuple[bytes, int, int]]] = {
    ECDSA_NISTP256: (b"nistp256", 32, 256),
    ECDSA_NISTP384: (b"nistp384", 48, 384),
    ECDSA_NISTP521: (b"nistp521", 66, 521),
    SK_ECDSA_NISTP256: (b"nistp256", 32, 256),
}

# Certificates name their key type with this suffix (v00 was the legacy format); the
# sk types put it before the "@openssh.com": sk-ssh-ed25519-cert-v01@openssh.com.
_CERTIFICATE_TYPE = re.compile(r"\S+-cert-v0[01]@openssh\.com")
_KNOWN_TYPES: Final = frozenset((*ACCEPTED_KEY_TYPES, DSA))

# What whitespace is: Python's str.isspace, minus the C0/C1 separators it counts
# (\x1c-\x1f, \x85), which are control characters that a comment must not hold.
_WHITESPACE: Final = (
    " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Editors on Windows start files with a byte order mark; trim it with the whitespace.
_TRIM: Final = _WHITESPACE + "\ufeff"
_WHITESPACE_RUN = re.compile(f"[{_WHITESPACE}]+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Bidirectional overrides and isolates can make a comment display as something else.
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# PEM/PKCS#8 ("-----BEGIN RSA PRIVATE KEY-----", "BEGIN ENCRYPTED PRIVATE KEY", ...),
# OpenSSH ("BEGIN OPENSSH PRIVATE KEY") and ssh.com ("BEGIN SSH2 ENCRYPTED PRIVATE KEY")
# share the words; the word count is bounded so that the search stays linear. PuTTY
# files are recognised by their header lines, and an OpenSSH private key without its
# armour lines by the base64 of its magic "openssh-key-v1\0".
_PRIVATE_KEY_MARKER = re.compile(
    r"(?:BEGIN|END)\s+(?:[A-Z0-9]{1,20}\s+){0,4}PRIVATE\s+KEY"
    r"|PuTTY-User-Key-File-|Private-Lines:|Private-MAC:"
    r"|b3BlbnNzaC1rZXktdjEA"
)
# These three match across any whitespace, so that a comment whose whitespace is later
# collapsed to single spaces cannot turn into a marker: the canonical form of an accepted
# key must be accepted again.
_PEM_PUBLIC_KEY = re.compile(r"-----BEGIN\s+(?:RSA\s+)?PUBLIC\s+KEY-----")
_PEM_ANYTHING = re.compile(r"-----BEGIN\s[A-Z0-9\s]{1,40}-----")

# A second key inside a comment: a key-type-shaped token followed by base64 that starts
# like a blob (its first field is a short string, so its length begins with zero bytes)
# and is at least as long as the shortest real key (Ed25519: 68 characters).
_KEY_IN_TEXT = re.compile(r"(?<!\S)(?:ssh|ecdsa|sk)-[A-Za-z0-9@._-]{1,64}\s+AAAA[A-Za-z0-9+/]{60,}")
_KEY_TYPE_SHAPE = re.compile(r"(?:ssh|ecdsa|sk|x509v3)-[A-Za-z0-9@._+-]+")

# The options an authorized_keys line may start with (sshd(8), AUTHORIZED_KEYS FILE FORMAT).
_AUTHORIZED_KEYS_OPTION = re.compile(
    r"(?:agent-forwarding|cert-authority|command|environment|expiry-time|from"
    r"|no-agent-forwarding|no-port-forwarding|no-pty|no-touch-required|no-user-rc"
    r"|no-x11-forwarding|permitlisten|permitopen|port-forwarding|principals|pty|restrict"
    r"|tunnel|user-rc|verify-required|x11-forwarding)(?:=|,|$)",
    re.IGNORECASE,
)

_COPY_AGAIN = "copy the key again from your .pub file, without editing it"
_ACCEPTED_LIST = (
    "ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, "
    f"ssh-rsa ({RSA_MIN_BITS} to {RSA_MAX_BITS} bits), {SK_ED25519} or {SK_ECDSA_NISTP256}"
)

PRIVATE_KEY_MESSAGE: Final = (
    "This is a private key, which must stay secret and never be uploaded; "
    "upload the public key instead: the contents of the .pub file next to it, "
    "for example ~/.ssh/id_ed25519.pub"
)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """An acceptable public key.

    `bits` and both fingerprints are exactly what `ssh-keygen -l -E sha256|md5` prints;
    `comment` has its whitespace runs collapsed to one space, and is None when absent.
    """

    key_type: str
    blob: bytes
    comment: str | None
    bits: int
    fingerprint_sha256: str
    fingerprint_md5: str

    @property
    def openssh(self) -> str:
        """The canonical one-line form: `TYPE BASE64`, plus ` COMMENT` if there is one."""
        line = f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"
        return f"{line} {self.comment}" if self.comment else line


def looks_like_private_key(text: str) -> bool:
    """True if the text holds (or is part of) a private key in any common format.

    Cheap enough for a CLI or a web page to run before sending anything.
    """
    if not isinstance(text, str):
        return False
    # Each of the marker's forms holds one of these words: a substring test (in C) spares
    # almost every public key the regular expression's scan from every position.
    if not (
        "PRIVATE" in text
        or "Private-" in text
        or "PuTTY-User-Key-File-" in text
        or "b3BlbnNzaC1rZXktdjEA" in text
    ):
        return False
    return _PRIVATE_KEY_MARKER.search(text) is not None


def parse_public_key(text: str) -> ParsedKey:
    """The key in `text`, an OpenSSH public key line or an RFC 4716 block.

    Raises PublicKeyError, with advice the user can follow, for anything SPEC 4 does
    not accept; no other exception escapes, whatever the input.
    """
    if not isinstance(text, str):
        raise PublicKeyError("The public key must be text", "not-text")
    if looks_like_private_key(text):
        raise PublicKeyError(PRIVATE_KEY_MESSAGE, "private-key")
    # surrogatepass: a lone surrogate must be measured, not crash the encoder.
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PUBLIC_KEY_BYTES:
        raise PublicKeyError(
            f"The public key is longer than {MAX_PUBLIC_KEY_BYTES} bytes, more than any "
            "supported key needs; paste the contents of your .pub file, one key only",
            "too-large",
        )

    trimmed = text.strip(_TRIM)
    if not trimmed:
        raise PublicKeyError(
            "The public key is empty; paste the contents of your .pub file, "
            "for example ~/.ssh/id_ed25519.pub",
            "empty",
        )
    if _PEM_PUBLIC_KEY.search(trimmed):
        raise PublicKeyError(
            "This is a PEM public key; convert it to the OpenSSH form with "
            "ssh-keygen -i -m PKCS8 -f key.pem (or -m PEM for a BEGIN RSA PUBLIC KEY file) "
            "and paste the line it prints",
            "pem-public-key",
        )
    if _PEM_ANYTHING.search(trimmed):
        raise PublicKeyError(
            "This is a PEM file, not an SSH public key; paste the contents of your .pub "
            "file, a line that starts with the key type, such as ssh-ed25519",
            "not-openssh",
        )

    lines = [line for line in (part.strip(_TRIM) for part in _LINE_BREAK.split(trimmed)) if line]
    if lines[0] == rfc4716.BEGIN:
        block = rfc4716.parse_block(lines)
        return _parse_key(None, block.body, block.comment)
    if len(lines) > 1:
        _refuse_several_lines(lines)
    return _parse_line(lines[0])


def _refuse_several_lines(lines: list[str]) -> NoReturn:
    starts = sum(1 for line in lines if line == rfc4716.BEGIN or _starts_like_key(line))
    if starts > 1:
        raise PublicKeyError(
            "This text holds more than one key; paste one key at a time", "multiple-keys"
        )
    raise PublicKeyError(
        "A public key is a single line, but this text has several; paste one key at a "
        "time, as the one line of its .pub file (copying may have added line breaks)",
        "multiple-lines",
    )


def _starts_like_key(line: str) -> bool:
    first = _WHITESPACE_RUN.split(line, maxsplit=1)[0]
    return _KEY_TYPE_SHAPE.fullmatch(first) is not None


def _parse_line(line: str) -> ParsedKey:
    fields = _WHITESPACE_RUN.split(line, maxsplit=2)
    key_type = fields[0]
    if key_type not in ACCEPTED_KEY_TYPES:
        _refuse_type_token(key_type, line)
    if len(fields) < 2:
        raise PublicKeyError(
            f"The key data is missing after the key type; {_COPY_AGAIN}", "missing-key-data"
        )
    return _parse_key(key_type, fields[1], fields[2] if len(fields) > 2 else None)


def _refuse_type_token(token: str, line: str) -> NoReturn:
    """Raise the most helpful error for a line whose first token is no accepted type."""
    _refuse_unaccepted_type(token)
    if _AUTHORIZED_KEYS_OPTION.match(token) or any(
        _is_key_type_token(word) for word in _WHITESPACE_RUN.split(line)[1:]
    ):
        raise PublicKeyError(
            "Remove what comes before the key type (authorized_keys options such as "
            'command="…", from="…" or restrict are not accepted here); keep only the part '
            "that starts with the key type, such as ssh-ed25519 AAAA…",
            "options-prefix",
        )
    pasted_type = _type_inside_base64(token)
    if pasted_type is not None:
        raise PublicKeyError(
            f"The key type is missing before the key data; paste the whole line, "
            f"which starts with {pasted_type}",
            "missing-type",
        )
    raise _unsupported_type_error()


def _refuse_unaccepted_type(key_type: str) -> None:
    """Raise for a key-type name that SPEC 4 refuses by name; return for anything else."""
    if key_type == DSA:
        raise PublicKeyError(
            "DSA keys are no longer accepted; generate an Ed25519 key with ssh-keygen -t ed25519",
            "dsa",
        )
    if _CERTIFICATE_TYPE.fullmatch(key_type):
        raise PublicKeyError(
            "This is an SSH certificate, not a public key; upload the plain public key "
            "it was issued for, the .pub file without -cert in its name",
            "certificate",
        )
    if _KEY_TYPE_SHAPE.fullmatch(key_type) and key_type not in ACCEPTED_KEY_TYPES:
        raise _unsupported_type_error()


def _unsupported_type_error() -> PublicKeyError:
    return PublicKeyError(
        f"This is not a supported SSH public key; paste a line of a .pub file that starts "
        f"with one of the accepted key types: {_ACCEPTED_LIST}",
        "unsupported-type",
    )


def _is_key_type_token(word: str) -> bool:
    return word in _KNOWN_TYPES or _CERTIFICATE_TYPE.fullmatch(word) is not None


def _type_inside_base64(token: str) -> str | None:
    """The accepted key type a bare base64 blob declares, or None if it is not one."""
    try:
        reader = WireReader(base64.b64decode(token, validate=True))
        inner = reader.read_string().decode("ascii")
    except (ValueError, TruncatedError):
        return None
    return inner if inner in ACCEPTED_KEY_TYPES else None


def _parse_key(key_type: str | None, data: str, raw_comment: str | None) -> ParsedKey:
    """The key of base64 `data` announced as `key_type`; raises PublicKeyError.

    `key_type` is None for an RFC 4716 block, whose only type is the one in the blob.
    """
    blob = _decode_base64(data)
    reader = WireReader(blob)
    try:
        inner = reader.read_string()
        inner_type = _known_type_name(inner)
        if key_type is None:
            if inner_type is None:
                raise _unsupported_type_error()
            _refuse_unaccepted_type(inner_type)
            key_type = inner_type
        elif inner_type != key_type:
            what = f"a key of type {inner_type}" if inner_type else "another type of key"
            raise PublicKeyError(
                f"The key type at the start of the line does not match the key data, "
                f"which holds {what}; {_COPY_AGAIN}",
                "type-mismatch",
            )
        bits = _read_key_fields(key_type, reader)
    except TruncatedError:
        raise PublicKeyError(
            f"The key data is incomplete, as if cut short; {_COPY_AGAIN}", "truncated"
        ) from None
    except MpintError:
        raise PublicKeyError(
            "The RSA key data does not encode its numbers the standard way (RFC 4251); "
            "make the .pub file again from your private key with "
            "ssh-keygen -y -f ~/.ssh/id_rsa > ~/.ssh/id_rsa.pub",
            "bad-encoding",
        ) from None
    if reader.remaining:
        raise PublicKeyError(
            f"The key data goes on after the end of the key; {_COPY_AGAIN}",
            "trailing-bytes",
        )
    _check_with_cryptography(key_type, data)
    # The key's own problems are reported before the comment's.
    comment = _clean_comment(raw_comment)
    return ParsedKey(
        key_type=key_type,
        blob=blob,
        comment=comment,
        bits=bits,
        fingerprint_sha256=fingerprint_sha256(blob),
        fingerprint_md5=fingerprint_md5(blob),
    )


def _known_type_name(raw: bytes) -> str | None:
    # Only names of our own list may appear in a message: the rest is user input.
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return name if name in _KNOWN_TYPES or _CERTIFICATE_TYPE.fullmatch(name) else None


def _decode_base64(data: str) -> bytes:
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        blob = None
    # Re-encoding must give the text back: that refuses missing padding and stray bits
    # in the last character, as OpenSSH does, so one key has one spelling.
    if blob is None or base64.b64encode(blob).decode("ascii") != data:
        raise PublicKeyError(
            f"The key data is not valid base64; {_COPY_AGAIN}",
            "bad-base64",
        )
    return blob


def _read_key_fields(key_type: str, reader: WireReader) -> int:
    """Read the fields after the type string; the key's size in bits as ssh-keygen shows it."""
    if key_type in (ED25519, SK_ED25519):
        public = reader.read_string()
        if len(public) != 32:
            raise PublicKeyError(
                f"An Ed25519 public key is 32 bytes long, but this key data holds "
                f"{len(public)}; {_COPY_AGAIN}",
                "ed25519-length",
            )
        if key_type == SK_ED25519:
            reader.read_string()  # the FIDO application, usually "ssh:"
        return 256
    if key_type in _EC_CURVES:
        curve, coordinate_bytes, bits = _EC_CURVES[key_type]
        if reader.read_string() != curve:
            raise PublicKeyError(
                f"The curve named inside the key data is not the one of {key_type}; {_COPY_AGAIN}",
                "curve-mismatch",
            )
        point = reader.read_string()
        # OpenSSH writes and reads only uncompressed points: 0x04, then X and Y.
        if len(point) != 1 + 2 * coordinate_bytes or point[0] != 0x04:
            raise PublicKeyError(
                f"The key's EC point is malformed (OpenSSH keys hold an uncompressed "
                f"point); {_COPY_AGAIN}",
                "invalid-point",
            )
        if key_type == SK_ECDSA_NISTP256:
            reader.read_string()  # the FIDO application, usually "ssh:"
        return bits
    return _read_rsa_fields(reader)


def _read_rsa_fields(reader: WireReader) -> int:
    exponent = reader.read_mpint()
    modulus = reader.read_mpint()
    bits = modulus.bit_length()
    # The size is checked before anything touches the number: a huge modulus is
    # refused without any arithmetic on it.
    if bits > RSA_MAX_BITS:
        raise PublicKeyError(
            f"RSA keys over {RSA_MAX_BITS} bits are not accepted; generate an Ed25519 key "
            f"with ssh-keygen -t ed25519, or an RSA key of 3072 to {RSA_MAX_BITS} bits",
            "rsa-too-large",
        )
    if bits < RSA_MIN_BITS:
        raise PublicKeyError(
            f"This RSA key has {bits} bits, and RSA keys under {RSA_MIN_BITS} bits are too "
            "weak to accept; generate an Ed25519 key with ssh-keygen -t ed25519, or an RSA "
            "key of at least 3072 bits with ssh-keygen -t rsa -b 3072",
            "rsa-too-small",
        )
    if exponent == 1 or exponent % 2 == 0:
        raise PublicKeyError(
            "The RSA public exponent must be odd and greater than 1 (ssh-keygen uses 65537), "
            "so this is not a usable RSA key; generate a new key with ssh-keygen -t ed25519",
            "rsa-exponent",
        )
    if modulus % 2 == 0:
        raise PublicKeyError(
            "The RSA modulus is even, so this is not a usable RSA key; "
            "generate a new key with ssh-keygen -t ed25519",
            "rsa-modulus",
        )
    if has_roca_fingerprint(modulus):
        raise PublicKeyError(
            "This RSA key has the ROCA weakness (CVE-2017-15361, keys made by some Infineon "
            "chips): its private key can be computed from the public key; generate a new key, "
            "for example with ssh-keygen -t ed25519, and replace this one everywhere it is used",
            "rsa-roca",
        )
    return bits


# Ed25519 keys (plain and sk-) are any 32 bytes to `cryptography`, as to OpenSSH: it
# checks their length only, which our reader already did, so the call is skipped.
_NOTHING_MORE_TO_CHECK = frozenset({"ssh-ed25519", "sk-ssh-ed25519@openssh.com"})


def _check_with_cryptography(key_type: str, data: str) -> None:
    """Let `cryptography` check the mathematics our reader does not (points on curves)."""
    if key_type in _NOTHING_MORE_TO_CHECK:
        return
    try:
        load_ssh_public_identity(f"{key_type} {data}".encode("ascii"))
    # Any exception at all: the library's errors are not all ValueError (a compressed
    # point raises NotImplementedError), and none may escape this module.
    except Exception:
        if key_type in _EC_CURVES:
            raise PublicKeyError(
                "The key's EC point is not on its curve, so the key data is corrupt; "
                f"{_COPY_AGAIN}, or generate a new key",
                "invalid-point",
            ) from None
        raise PublicKeyError(
            f"The key data does not hold a usable {key_type} key; {_COPY_AGAIN}, "
            "or generate a new key",
            "invalid-key",
        ) from None


def _clean_comment(raw: str | None) -> str | None:
    """The comment with whitespace runs made one space; None if empty.

    Raises PublicKeyError if it holds control characters or another key.
    """
    if raw is None:
        return None
    comment = _WHITESPACE_RUN.sub(" ", raw).strip(_TRIM)
    # A printable comment (almost every one) holds none of them: str.isprintable() is
    # false for every control (Cc), surrogate (Cs) and format character (Cf, the bidi
    # controls among them), so only the others need a look character by character.
    if not comment.isprintable() and any(
        unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS for ch in comment
    ):
        raise PublicKeyError(
            "The comment after the key data contains control characters; "
            "remove them and keep only printable text",
            "comment-control-characters",
        )
    if _KEY_IN_TEXT.search(comment):
        raise PublicKeyError(
            "The comment after the key data holds another key; paste one key at a time",
            "key-in-comment",
        )
    return comment or None


def fingerprint_sha256(blob: bytes) -> str:
    """`SHA256:` and the unpadded base64 of the blob's SHA-256, as ssh-keygen prints it."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def fingerprint_md5(blob: bytes) -> str:
    """`MD5:` and the blob's MD5 as colon-separated lowercase hex, as ssh-keygen prints it."""
    digest = hashlib.md5(blob, usedforsecurity=False).digest()
    return "MD5:" + digest.hex(":")
