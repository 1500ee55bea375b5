"""The key parser under mutation: valid keys damaged in the ways copying and pasting does.

tests/unit/test_pubkey_properties.py covers any text, key-like text, comments, RFC 4716
blocks and random splices. These add what it leaves open: input that is bytes, not
text; and targeted mutations of valid keys with a known right answer — a strict prefix
of a blob is always "truncated", appended bytes always "trailing-bytes", the type of
one key before the blob of another always "type-mismatch", a bit flipped in a blob's
type field always refused, and a bit flipped anywhere else either refused or accepted
as exactly the flipped key, with fingerprints recomputed here independently.
"""

from __future__ import annotations

import base64
import hashlib

from hypothesis import event, given, settings
from hypothesis import strategies as st

from gpucloud.pubkey import ParsedKey, PublicKeyError, parse_public_key
from tests.support.keygen import (
    one_blob_of_each_type,
    openssh_line,
)

VALID_KEYS = list(one_blob_of_each_type())
TYPES = [key_type for key_type, _ in VALID_KEYS]
MUTATION_SETTINGS = settings(max_examples=300, deadline=None)
# Whitespace that may stand between the fields of a line without changing the key.
SEPARATORS = st.text(alphabet=" \t\u00a0\u2003\u3000", min_size=1, max_size=4)

valid_keys = st.sampled_from(VALID_KEYS)


def independent_fingerprints(blob: bytes) -> tuple[str, str]:
    """(SHA256:…, MD5:…) of a blob, computed as ssh-keygen documents them, not by gpucloud."""
    sha256 = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return f"SHA256:{sha256}", "MD5:" + ":".join(md5[i : i + 2] for i in range(0, 32, 2))


def refusal(text: str) -> str:
    """The rule that refuses `text`; fails the test if the text is accepted."""
    try:
        key = parse_public_key(text)
    except PublicKeyError as error:
        assert error.message
        return error.code
    raise AssertionError(f"accepted a damaged key: {key.openssh[:80]}")


def accepted_or_refused(text: str) -> ParsedKey | None:
    """The key, or None if refused; an accepted key must be exactly its blob, with the
    fingerprints of that blob, and parse back to itself from its canonical form."""
    try:
        key = parse_public_key(text)
    except PublicKeyError as error:
        assert error.message
        event(f"refused: {error.code}")
        return None
    event("accepted")
    assert (key.fingerprint_sha256, key.fingerprint_md5) == independent_fingerprints(key.blob)
    assert parse_public_key(key.openssh) == key
    return key


@MUTATION_SETTINGS
@given(st.binary())
def test_bytes_are_refused_as_not_text(data: bytes) -> None:
    """If the parser is given bytes instead of text, then it refuses them as not text."""
    try:
        parse_public_key(data)  # type: ignore[arg-type]
    except PublicKeyError as error:
        assert error.code == "not-text"
    else:
        raise AssertionError("bytes were accepted")


@MUTATION_SETTINGS
@given(st.binary(), st.sampled_from(["utf-8", "latin-1"]))
def test_any_bytes_decoded_are_parsed_or_refused(data: bytes, encoding: str) -> None:
    """If any bytes are decoded (undecodable bytes as lone surrogates) and parsed, then
    the result is a key or the parser's refusal, nothing else."""
    accepted_or_refused(data.decode(encoding, "surrogateescape"))


@MUTATION_SETTINGS
@given(valid_keys, st.data())
def test_every_strict_prefix_of_a_blob_is_refused_as_truncated(
    key: tuple[str, bytes], data: st.DataObject
) -> None:
    """If a valid blob is cut short anywhere, then the key is refused as truncated."""
    key_type, blob = key
    cut = data.draw(st.integers(1, len(blob) - 1), label="kept bytes")
    assert refusal(openssh_line(key_type, blob[:cut], "laptop")) == "truncated"


@MUTATION_SETTINGS
@given(valid_keys, st.binary(min_size=1, max_size=64))
def test_bytes_appended_to_a_blob_are_refused(key: tuple[str, bytes], extra: bytes) -> None:
    """If bytes are appended to a valid blob, then the key is refused for trailing bytes."""
    key_type, blob = key
    assert refusal(openssh_line(key_type, blob + extra, "laptop")) == "trailing-bytes"


@MUTATION_SETTINGS
@given(valid_keys, st.sampled_from(TYPES))
def test_a_type_name_that_is_not_the_blobs_is_refused(key: tuple[str, bytes], claimed: str) -> None:
    """If a line names another accepted type than its blob holds, then it is refused as a
    type mismatch; if it names the blob's own type, then it is that key."""
    key_type, blob = key
    line = openssh_line(claimed, blob)
    if claimed == key_type:
        parsed = accepted_or_refused(line)
        assert parsed is not None and parsed.blob == blob
    else:
        assert refusal(line) == "type-mismatch"


@MUTATION_SETTINGS
@given(valid_keys, st.data())
def test_a_bit_flipped_in_the_type_field_is_refused(
    key: tuple[str, bytes], data: st.DataObject
) -> None:
    """If one bit of a valid blob's type field (its length or its name) is flipped, then
    the key is refused."""
    key_type, blob = key
    field_end = 4 + len(key_type)
    bit = data.draw(st.integers(0, field_end * 8 - 1), label="bit")
    flipped = bytearray(blob)
    flipped[bit // 8] ^= 1 << (bit % 8)
    refusal(openssh_line(key_type, bytes(flipped), "laptop"))


@MUTATION_SETTINGS
@given(valid_keys, st.data())
def test_a_bit_flipped_in_the_key_is_refused_or_is_that_other_key(
    key: tuple[str, bytes], data: st.DataObject
) -> None:
    """If one bit of a valid blob is flipped, then the key is refused, or accepted as
    exactly the flipped blob with that blob's fingerprints, never the original's."""
    key_type, blob = key
    bit = data.draw(st.integers(0, len(blob) * 8 - 1), label="bit")
    flipped = bytearray(blob)
    flipped[bit // 8] ^= 1 << (bit % 8)
    parsed = accepted_or_refused(openssh_line(key_type, bytes(flipped), "laptop"))
    if parsed is not None:
        assert parsed.blob == bytes(flipped)
        assert parsed.key_type == key_type
        assert parsed.fingerprint_sha256 != independent_fingerprints(blob)[0]


@MUTATION_SETTINGS
@given(valid_keys, st.data())
def test_base64_cut_short_is_refused(key: tuple[str, bytes], data: st.DataObject) -> None:
    """If the base64 of a valid key loses characters at its end, then the key is refused."""
    key_type, blob = key
    text = base64.b64encode(blob).decode()
    cut = data.draw(st.integers(1, len(text) - 1), label="kept characters")
    assert refusal(f"{key_type} {text[:cut]} laptop") in ("bad-base64", "truncated")


@MUTATION_SETTINGS
@given(valid_keys, st.data())
def test_a_base64_character_replaced_is_refused_or_is_that_other_key(
    key: tuple[str, bytes], data: st.DataObject
) -> None:
    """If one base64 character of a valid key is replaced by any character, then the key
    is refused, or accepted with the fingerprints of exactly what the new text decodes to."""
    key_type, blob = key
    text = base64.b64encode(blob).decode()
    at = data.draw(st.integers(0, len(text) - 1), label="position")
    new = data.draw(st.characters(codec="utf-8"), label="character")
    mutated = text[:at] + new + text[at + 1 :]
    parsed = accepted_or_refused(f"{key_type} {mutated}")
    if parsed is not None:
        assert parsed.blob == base64.b64decode(mutated, validate=True)


@MUTATION_SETTINGS
@given(valid_keys, SEPARATORS, SEPARATORS, st.text(min_size=1, max_size=20))
def test_other_whitespace_between_the_fields_keeps_the_key(
    key: tuple[str, bytes], first: str, second: str, comment: str
) -> None:
    """If the spaces between type, key data and comment are other runs of whitespace, then
    the key is the same key, with the same fingerprint, or refused for its comment."""
    key_type, blob = key
    data = base64.b64encode(blob).decode()
    try:
        parsed = parse_public_key(f"{key_type}{first}{data}{second}{comment}")
    except PublicKeyError as error:
        # The comment alone may be refused (control characters, a second key in it …),
        # never the key: without the comment, the same line is accepted.
        event(f"refused: {error.code}")
        assert parse_public_key(f"{key_type}{first}{data}").blob == blob
        return
    assert (parsed.key_type, parsed.blob) == (key_type, blob)
    assert parsed.fingerprint_sha256 == independent_fingerprints(blob)[0]
