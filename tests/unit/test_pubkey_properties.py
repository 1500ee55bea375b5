"""Properties of the public key parser, for any input at all."""

from __future__ import annotations

import base64

from hypothesis import event, given, settings
from hypothesis import strategies as st

from gpucloud.pubkey import ParsedKey, PublicKeyError, looks_like_private_key, parse_public_key
from tests.support.keygen import (
    one_blob_of_each_type,
    openssh_line,
)

VALID_KEYS = list(one_blob_of_each_type())
# Pieces that lead the parser down its deeper paths when strung together at random.
FRAGMENTS = [
    *(key_type for key_type, _ in VALID_KEYS),
    *(base64.b64encode(blob).decode() for _, blob in VALID_KEYS),
    "ssh-dss",
    "ssh-ed25519-cert-v01@openssh.com",
    "---- BEGIN SSH2 PUBLIC KEY ----",
    "---- END SSH2 PUBLIC KEY ----",
    "Comment: ",
    '"',
    "\\",
    "-----BEGIN PUBLIC KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    'command="x" ',
    "restrict,",
    "AAAA",
    "=",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\u3000",
    "\ufeff",
    "\x00",
]

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)

whitespace = st.text(alphabet=" \t\r\n\u00a0\u3000\ufeff", max_size=4)


def parse_or_refuse(text: str) -> ParsedKey | None:
    """The parsed key, or None if refused; fails the test on any other outcome.

    For an accepted key, also checks that its canonical form parses back to itself.
    """
    try:
        key = parse_public_key(text)
    except PublicKeyError as error:
        assert error.message
        event(f"refused: {error.code}")
        return None
    event("accepted")
    assert parse_public_key(key.openssh) == key
    assert "\n" not in key.openssh
    return key


@PROPERTY_SETTINGS
@given(st.text())
def test_any_text_is_parsed_or_refused(text: str) -> None:
    """If any text at all is parsed, then it gives a ParsedKey or a PublicKeyError, nothing else."""
    parse_or_refuse(text)


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=12).map("".join))
def test_key_like_text_is_parsed_or_refused(text: str) -> None:
    """If text made of key-like pieces is parsed, then it gives a ParsedKey or a PublicKeyError."""
    parse_or_refuse(text)


@PROPERTY_SETTINGS
@given(st.sampled_from(VALID_KEYS), st.text(), whitespace, whitespace)
def test_any_comment_keeps_the_key_and_round_trips(
    key: tuple[str, bytes], comment: str, before: str, after: str
) -> None:
    """If a valid key has any comment, then it is refused or keeps its blob and round-trips."""
    key_type, blob = key
    parsed = parse_or_refuse(f"{before}{openssh_line(key_type, blob)} {comment}{after}")
    if parsed is not None:
        assert parsed.blob == blob
        assert parsed.key_type == key_type
        assert parsed.openssh.startswith(openssh_line(key_type, blob))


@PROPERTY_SETTINGS
@given(st.sampled_from(VALID_KEYS), st.data())
def test_damaged_blobs_are_parsed_or_refused(key: tuple[str, bytes], data: st.DataObject) -> None:
    """If a valid blob is damaged anywhere, then the line gives a ParsedKey or a PublicKeyError."""
    key_type, blob = key
    damaged = bytearray(blob)
    start = data.draw(st.integers(0, len(damaged)))
    end = data.draw(st.integers(start, min(len(damaged), start + 8)))
    damaged[start:end] = data.draw(st.binary(max_size=8))
    parse_or_refuse(openssh_line(key_type, bytes(damaged), "comment"))


@PROPERTY_SETTINGS
@given(st.sampled_from(VALID_KEYS), st.text(), st.integers(4, 80))
def test_rfc4716_blocks_match_the_openssh_form(
    key: tuple[str, bytes], comment: str, width: int
) -> None:
    """If a valid key comes in an RFC 4716 block, then it is refused or the same key as its line."""
    key_type, blob = key
    data = base64.b64encode(blob).decode()
    block = "\n".join(
        [
            "---- BEGIN SSH2 PUBLIC KEY ----",
            f'Comment: "{comment}"',
            *(data[start : start + width] for start in range(0, len(data), width)),
            "---- END SSH2 PUBLIC KEY ----",
        ]
    )
    parsed = parse_or_refuse(block)
    if parsed is not None:
        assert (parsed.key_type, parsed.blob) == (key_type, blob)


@PROPERTY_SETTINGS
@given(st.text())
def test_looks_like_private_key_answers_any_text(text: str) -> None:
    """If any text is checked for a private key, then the answer is a bool and nothing raises."""
    assert looks_like_private_key(text) in (True, False)
