"""The RFC 4716 ("SSH2", `ssh-keygen -e`) public key block.

    ---- BEGIN SSH2 PUBLIC KEY ----
    Comment: "256-bit ED25519, converted by me@host from OpenSSH"
    AAAAC3NzaC1lZDI1NTE5AAAAIOLR8b8+YqLNSvnjU9w9nVv4MW732QHxeHctyL6gSUiG
    ---- END SSH2 PUBLIC KEY ----

Only the framing is handled here: headers (a line ending in a backslash continues on
the next one), the `Comment` header, and the base64 body spread over several lines.
The key data itself is checked by the same code as the OpenSSH line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpucloud.pubkey.errors import PublicKeyError

BEGIN = "---- BEGIN SSH2 PUBLIC KEY ----"
END = "---- END SSH2 PUBLIC KEY ----"


@dataclass(frozen=True, slots=True)
class Block:
    """The parts of a block: the base64 body joined into one string, and the raw comment."""

    body: str
    comment: str | None


def parse_block(lines: Sequence[str]) -> Block:
    """The body and comment of a block given as its non-empty, trimmed lines.

    The first line must be BEGIN. Raises PublicKeyError when the END line is missing,
    when anything follows it, when a header's continuation never ends, or when the
    body is empty.
    """
    if not lines or lines[0] != BEGIN:
        raise PublicKeyError(f"An SSH2 public key block must start with {BEGIN}", "bad-rfc4716")
    try:
        end = list(lines).index(END)
    except ValueError:
        raise PublicKeyError(
            f"The SSH2 public key block has no {END} line; "
            "copy the whole block, from its BEGIN line to its END line",
            "bad-rfc4716",
        ) from None
    if end != len(lines) - 1:
        raise PublicKeyError(
            f"The text goes on after the {END} line; paste one key at a time, and nothing else",
            "multiple-keys",
        )

    inner = lines[1:end]
    comment: str | None = None
    index = 0
    # Base64 has no colon, so the headers are the leading lines that hold one
    # (RFC 4716 section 3.3), each with its continuation lines.
    while index < len(inner) and ":" in inner[index]:
        header = inner[index]
        while header.endswith("\\"):
            index += 1
            if index >= len(inner):
                raise PublicKeyError(
                    "A header of the SSH2 public key block ends with a backslash but has "
                    "no continuation line; copy the whole block again",
                    "bad-rfc4716",
                )
            header = header[:-1] + inner[index]
        index += 1
        tag, _, value = header.partition(":")
        # Tags are case-insensitive; when Comment appears twice, the first one wins.
        if tag.strip().lower() == "comment" and comment is None:
            comment = _unquote(value.strip())

    body = "".join(inner[index:])
    if not body:
        raise PublicKeyError(
            "The SSH2 public key block holds no key data; copy the whole block again",
            "missing-key-data",
        )
    return Block(body=body, comment=comment)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value
