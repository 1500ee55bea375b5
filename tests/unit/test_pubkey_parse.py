"""The public key parser against SPEC 4, checked against the real ssh-keygen."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import cast

import pytest

import gpucloud.pubkey
from gpucloud.pubkey import (
    ACCEPTED_KEY_TYPES,
    MAX_PUBLIC_KEY_BYTES,
    PublicKeyError,
    looks_like_private_key,
    parse_public_key,
)
from tests.support.keygen import (
    ACCEPTED_KINDS,
    KINDS,
    KeyCorpus,
    blob_of,
    ecdsa_blob,
    ed25519_blob,
    export_pem,
    export_rfc4716,
    fingerprint,
    hand_built_weak_key,
    openssh_line,
    rsa_blob,
    sk_ecdsa256_blob,
    sk_ed25519_blob,
    ssh_mpint,
    ssh_string,
)

PRIVATE_KEY_SAMPLES = (
    "openssh-ed25519",
    "openssh-ed25519-encrypted",
    "openssh-rsa",
    "pem-rsa",
    "pem-rsa-encrypted",
    "pem-ecdsa",
    "pem-dsa",
    "pkcs8-rsa",
    "pkcs8-rsa-encrypted",
    "pkcs8-ecdsa",
    "openssh-body-only",
    "putty-v3",
    "putty-v2",
    "sshcom-encrypted",
)
# Names a message may repeat although they came with the input: they are ours.
OUR_NAMES = frozenset((*ACCEPTED_KEY_TYPES, "ssh-dss"))


def refused(text: str, code: str) -> str:
    """The message `text` is refused with, after checking the rule and that nothing leaks."""
    with pytest.raises(PublicKeyError) as caught:
        parse_public_key(text)
    error = caught.value
    assert error.code == code, f"refused by rule {error.code!r}: {error.message}"
    assert str(error) == error.message
    assert not error.message.startswith("publicKey")
    for token in text.split() if isinstance(text, str) else []:
        if len(token) >= 16 and token not in OUR_NAMES:
            assert token not in error.message, "the message echoes the input"
    return error.message


def ed25519_line(comment: str | None = None) -> str:
    """A fresh ssh-ed25519 line."""
    return openssh_line("ssh-ed25519", ed25519_blob(), comment)


def real_rsa_modulus(key_corpus: KeyCorpus) -> int:
    """The modulus of the corpus' RSA 2048 key."""
    blob = blob_of(key_corpus.keys["rsa2048"].public_line)
    exponent_length = int.from_bytes(blob[11:15], "big")
    modulus_at = 15 + exponent_length
    length = int.from_bytes(blob[modulus_at : modulus_at + 4], "big")
    return int.from_bytes(blob[modulus_at + 4 : modulus_at + 4 + length], "big")


def random_modulus(bits: int) -> int:
    """An odd number of exactly `bits` bits: not a real modulus, but shaped like one."""
    return secrets.randbits(bits) | 1 | (1 << (bits - 1))


# --- The public surface ---


def test_public_surface_is_locked() -> None:
    """If the package's exports change, then this test fails until the change is deliberate."""
    assert sorted(gpucloud.pubkey.__all__) == [
        "ACCEPTED_KEY_TYPES",
        "MAX_PUBLIC_KEY_BYTES",
        "ParsedKey",
        "PublicKeyError",
        "looks_like_private_key",
        "parse_public_key",
    ]
    assert MAX_PUBLIC_KEY_BYTES == 16384
    assert issubclass(PublicKeyError, ValueError)


def test_accepted_types_are_the_specs() -> None:
    """If SPEC 4's list of accepted types is read, then ACCEPTED_KEY_TYPES holds exactly it."""
    assert set(ACCEPTED_KEY_TYPES) == {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }


def test_parser_imports_nothing_of_the_server() -> None:
    """If the parser's modules are read, then none imports the web, the database or gpucloud."""
    package = Path(gpucloud.pubkey.__file__).parent
    for module in package.glob("*.py"):
        source = module.read_text()
        for forbidden in ("fastapi", "sqlalchemy", "starlette", "pydantic", "httpx"):
            assert forbidden not in source, f"{module.name} mentions {forbidden}"
        for line in source.splitlines():
            if line.startswith(("import gpucloud", "from gpucloud")):
                assert line.startswith("from gpucloud.pubkey"), f"{module.name}: {line}"


def test_error_survives_pickling() -> None:
    """If a PublicKeyError is pickled and unpickled, then its message and code survive."""
    import pickle

    error = PublicKeyError("Some advice", "dsa")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.message, copy.code, str(copy)) == ("Some advice", "dsa", "Some advice")


# --- Every accepted kind, as ssh-keygen sees it ---


@pytest.mark.parametrize("kind", ACCEPTED_KINDS)
def test_accepted_key_has_ssh_keygens_sha256_fingerprint_and_bits(
    key_corpus: KeyCorpus, kind: str, tmp_path: Path
) -> None:
    """If a real key of each accepted kind is parsed, then bits and SHA256 match ssh-keygen -l."""
    key = key_corpus.keys[kind]
    parsed = parse_public_key(key.public_text)
    assert (parsed.bits, parsed.fingerprint_sha256) == fingerprint(
        tmp_path, key.public_text, "sha256"
    )


@pytest.mark.parametrize("kind", ACCEPTED_KINDS)
def test_accepted_key_has_ssh_keygens_md5_fingerprint(
    key_corpus: KeyCorpus, kind: str, tmp_path: Path
) -> None:
    """If a real key of each accepted kind is parsed, then its MD5 matches ssh-keygen -E md5."""
    key = key_corpus.keys[kind]
    parsed = parse_public_key(key.public_text)
    assert (parsed.bits, parsed.fingerprint_md5) == fingerprint(tmp_path, key.public_text, "md5")


@pytest.mark.parametrize("kind", ACCEPTED_KINDS)
def test_accepted_key_keeps_type_blob_and_comment(key_corpus: KeyCorpus, kind: str) -> None:
    """If a .pub file is parsed, then type, blob and comment are its own and openssh is its line."""
    key = key_corpus.keys[kind]
    parsed = parse_public_key(key.public_text)
    key_type, data, comment = key.public_line.split(" ")
    assert parsed.key_type == key_type
    assert parsed.blob == base64.b64decode(data)
    assert parsed.comment == comment == f"{kind}@gpucloud-test"
    assert parsed.openssh == key.public_line


@pytest.mark.parametrize("kind", ACCEPTED_KINDS)
def test_rfc4716_export_parses_like_the_openssh_line(key_corpus: KeyCorpus, kind: str) -> None:
    """If ssh-keygen -e output is parsed, then it is the same key, commented by its Comment."""
    key = key_corpus.keys[kind]
    block = export_rfc4716(key)
    header = next(line for line in block.splitlines() if line.startswith("Comment: "))
    from_line = parse_public_key(key.public_text)
    from_block = parse_public_key(block)
    assert from_block.key_type == from_line.key_type
    assert from_block.blob == from_line.blob
    assert from_block.bits == from_line.bits
    assert from_block.fingerprint_sha256 == from_line.fingerprint_sha256
    assert from_block.fingerprint_md5 == from_line.fingerprint_md5
    assert from_block.comment == header.removeprefix("Comment: ").strip('"')
    assert from_block.openssh == f"{from_line.key_type} {key.public_line.split()[1]} " + (
        from_block.comment or ""
    )


def test_largest_rsa_modulus_is_accepted_as_ssh_keygen_sees_it(tmp_path: Path) -> None:
    """If an RSA modulus has exactly 16384 bits, then it is accepted and ssh-keygen agrees."""
    line = openssh_line("ssh-rsa", rsa_blob(65537, random_modulus(16384)))
    parsed = parse_public_key(line)
    assert parsed.bits == 16384
    assert (parsed.bits, parsed.fingerprint_sha256) == fingerprint(tmp_path, line, "sha256")


def test_sk_key_with_another_application_is_accepted(tmp_path: Path) -> None:
    """If an sk key names an application other than "ssh:", then it is still accepted."""
    line = openssh_line("sk-ssh-ed25519@openssh.com", sk_ed25519_blob(b"ssh:work"), "yubikey")
    parsed = parse_public_key(line)
    assert (parsed.bits, parsed.fingerprint_sha256) == fingerprint(tmp_path, line, "sha256")


# --- The canonical form ---


def test_whitespace_runs_in_the_comment_become_one_space() -> None:
    """If the comment has runs of tabs and spaces, then each run becomes one space."""
    line = ed25519_line()
    parsed = parse_public_key(f"{line} \t my   laptop\t\tkey \u3000 2024")
    assert parsed.comment == "my laptop key 2024"
    assert parsed.openssh == f"{line} my laptop key 2024"


def test_surrounding_whitespace_line_breaks_and_bom_are_trimmed() -> None:
    """If the line comes with a BOM, blank lines and CRLF around it, then they are trimmed."""
    line = ed25519_line("laptop")
    parsed = parse_public_key(f"\ufeff\r\n\n  \t{line}  \r\n\r\n \n")
    assert parsed.openssh == line


def test_tabs_between_the_fields_become_single_spaces() -> None:
    """If the fields are separated by tabs and several spaces, then the canonical form has one."""
    key_type, data = ed25519_line().split(" ")
    parsed = parse_public_key(f"{key_type}\t \t{data}\t\tlaptop")
    assert parsed.openssh == f"{key_type} {data} laptop"


def test_key_without_comment_has_no_trailing_space() -> None:
    """If the key has no comment, then comment is None and openssh ends with the base64."""
    line = ed25519_line()
    parsed = parse_public_key(line + "   \n")
    assert parsed.comment is None
    assert parsed.openssh == line


def test_unicode_comment_is_kept() -> None:
    """If the comment holds accents and emoji, then it is kept as it is."""
    parsed = parse_public_key(ed25519_line("café ☕ Zoë's laptop"))
    assert parsed.comment == "café ☕ Zoë's laptop"


def test_comment_that_only_mentions_a_key_type_is_kept() -> None:
    """If the comment names a key type without key data after it, then it is an ordinary comment."""
    parsed = parse_public_key(ed25519_line("replaces my old ssh-rsa key"))
    assert parsed.comment == "replaces my old ssh-rsa key"


# --- RFC 4716 blocks ---


def rfc4716_block(blob: bytes, headers: list[str], width: int = 70) -> str:
    """An RFC 4716 block around `blob` with these header lines."""
    text = base64.b64encode(blob).decode()
    body = [text[start : start + width] for start in range(0, len(text), width)]
    return "\n".join(
        ["---- BEGIN SSH2 PUBLIC KEY ----", *headers, *body, "---- END SSH2 PUBLIC KEY ----"]
    )


def test_rfc4716_continued_headers_make_one_comment() -> None:
    """If a quoted Comment header goes on over backslash lines, then they form one comment."""
    blob = ed25519_blob()
    block = rfc4716_block(
        blob,
        [
            "Subject: me",
            'Comment: "1024-bit rsa, created by me@example.com Mon Jan 15 \\',
            '08:31:24 2001"',
            "x-command: /home/me/bin/lock-in-guest.sh BTSCsecure \\",
            "continued",
        ],
        width=20,
    )
    parsed = parse_public_key(block)
    assert parsed.blob == blob
    assert parsed.comment == "1024-bit rsa, created by me@example.com Mon Jan 15 08:31:24 2001"


def test_rfc4716_without_comment_has_no_comment() -> None:
    """If a block has no Comment header, or an empty one, then the key has no comment."""
    blob = ed25519_blob()
    assert parse_public_key(rfc4716_block(blob, [])).comment is None
    assert parse_public_key(rfc4716_block(blob, ['Comment: ""'])).comment is None
    assert parse_public_key(rfc4716_block(blob, ["Subject: me"])).openssh == openssh_line(
        "ssh-ed25519", blob
    )


def test_rfc4716_comment_tag_is_case_insensitive_and_unquoted_values_work() -> None:
    """If the tag is spelt "comment" and the value has no quotes, then it is the comment."""
    parsed = parse_public_key(rfc4716_block(ed25519_blob(), ["comment: my   laptop"]))
    assert parsed.comment == "my laptop"


def test_rfc4716_with_crlf_line_ends_is_accepted() -> None:
    """If a block has Windows line ends, then it parses the same."""
    blob = sk_ecdsa256_blob()
    parsed = parse_public_key(rfc4716_block(blob, ['Comment: "key"']).replace("\n", "\r\n"))
    assert (parsed.blob, parsed.comment) == (blob, "key")


def test_rfc4716_without_end_line_is_refused() -> None:
    """If a block has no END line, then it is refused and the message names the END line."""
    block = rfc4716_block(ed25519_blob(), []).rsplit("\n", 1)[0]
    assert "END SSH2 PUBLIC KEY" in refused(block, "bad-rfc4716")


def test_rfc4716_followed_by_more_text_is_refused() -> None:
    """If something follows the END line, then the block is refused: one key at a time."""
    block = rfc4716_block(ed25519_blob(), []) + "\n" + ed25519_line()
    assert "one key at a time" in refused(block, "multiple-keys")


def test_rfc4716_with_dangling_continuation_is_refused() -> None:
    """If the last header ends in a backslash, then the block is refused."""
    lines = rfc4716_block(ed25519_blob(), ['Comment: "a \\']).splitlines()
    block = "\n".join([lines[0], lines[1], lines[-1]])
    refused(block, "bad-rfc4716")


def test_rfc4716_without_body_is_refused() -> None:
    """If a block has headers but no key data, then it is refused as missing key data."""
    block = "---- BEGIN SSH2 PUBLIC KEY ----\nComment: x\n---- END SSH2 PUBLIC KEY ----"
    refused(block, "missing-key-data")


def test_rfc4716_dsa_key_is_refused_as_dsa(key_corpus: KeyCorpus) -> None:
    """If an RFC 4716 block holds a DSA key, then it gets the DSA message."""
    refused(export_rfc4716(key_corpus.keys["dsa"]), "dsa")


def test_rfc4716_block_with_unknown_blob_type_is_refused() -> None:
    """If an RFC 4716 block holds a blob of an unknown type, then the accepted types are listed."""
    blob = ssh_string(b"ssh-ed448") + ssh_string(bytes(57))
    message = refused(rfc4716_block(blob, []), "unsupported-type")
    assert all(name in message for name in ACCEPTED_KEY_TYPES)


# --- Refused kinds of key ---


def test_dsa_key_is_refused_with_the_specs_message(key_corpus: KeyCorpus) -> None:
    """If a DSA key is pasted, then the message is SPEC 3's, word for word."""
    message = refused(key_corpus.keys["dsa"].public_text, "dsa")
    assert message == (
        "DSA keys are no longer accepted; generate an Ed25519 key with ssh-keygen -t ed25519"
    )


def test_rsa_1024_is_refused_with_advice(key_corpus: KeyCorpus) -> None:
    """If an RSA key has 1024 bits, then it is refused, advising Ed25519 or RSA of 3072+ bits."""
    message = refused(key_corpus.keys["rsa1024"].public_text, "rsa-too-small")
    assert "1024" in message
    assert "2048" in message
    assert "ssh-keygen -t ed25519" in message
    assert "3072" in message


@pytest.mark.parametrize(("kind", "code"), [("dsa", "dsa"), ("rsa1024", "rsa-too-small")])
def test_hand_built_weak_keys_are_refused_too(kind: str, code: str, tmp_path: Path) -> None:
    """If ssh-keygen could not make weak keys, then the hand-built stand-ins are refused alike."""
    line = openssh_line(*hand_built_weak_key(kind), "weak")
    refused(line, code)
    assert fingerprint(tmp_path, line, "sha256")[0] == 1024


def test_rsa_just_under_2048_bits_is_refused() -> None:
    """If an RSA modulus has 2047 bits, then it is too small."""
    refused(openssh_line("ssh-rsa", rsa_blob(65537, random_modulus(2047))), "rsa-too-small")


def test_certificate_is_refused(key_corpus: KeyCorpus) -> None:
    """If an OpenSSH certificate is pasted, then it is refused, asking for the plain public key."""
    message = refused(key_corpus.certificate, "certificate")
    assert "certificate" in message
    assert "public key" in message


@pytest.mark.parametrize(
    "key_type",
    ["ssh-ed448", "ecdsa-sha2-nistp224", "ssh-xmss@openssh.com", "x509v3-ssh-rsa", "foo"],
)
def test_unknown_type_is_refused_listing_the_accepted_ones(key_type: str) -> None:
    """If the key type is unknown, then the message lists every accepted type."""
    data = base64.b64encode(ssh_string(key_type.encode()) + ssh_string(bytes(32))).decode()
    message = refused(f"{key_type} {data} comment", "unsupported-type")
    assert all(name in message for name in ACCEPTED_KEY_TYPES)


@pytest.mark.parametrize(
    ("kind", "pem_format"), [("rsa2048", "PKCS8"), ("rsa2048", "PEM"), ("ecdsa256", "PKCS8")]
)
def test_pem_public_key_is_refused_with_the_conversion_command(
    key_corpus: KeyCorpus, kind: str, pem_format: str
) -> None:
    """If a PEM public key is pasted, then the message gives the command that converts it."""
    pem = export_pem(key_corpus.keys[kind], "PKCS8" if pem_format == "PKCS8" else "PEM")
    assert "ssh-keygen -i -m PKCS8 -f key.pem" in refused(pem, "pem-public-key")


def test_other_pem_file_is_refused() -> None:
    """If a PEM file of another kind (an X.509 certificate) is pasted, then it is refused."""
    pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
    assert ".pub" in refused(pem, "not-openssh")


# --- Private keys ---


@pytest.mark.parametrize("sample", PRIVATE_KEY_SAMPLES)
def test_private_key_is_refused_without_echoing_it(key_corpus: KeyCorpus, sample: str) -> None:
    """If a private key of any format is pasted, then the message says so and holds none of it."""
    if sample not in key_corpus.private_keys:
        pytest.skip(f"this ssh-keygen cannot make {sample}")
    text = key_corpus.private_keys[sample]
    message = refused(text, "private-key")
    assert "private key" in message
    assert "secret" in message
    assert ".pub" in message
    assert "~/.ssh/id_ed25519.pub" in message
    for line in text.splitlines():
        if line.strip():
            assert line.strip() not in message
    assert looks_like_private_key(text)


def test_private_key_after_a_public_key_is_still_refused_as_private(
    key_corpus: KeyCorpus,
) -> None:
    """If a private key follows a valid public line, then it is the private key that is refused."""
    text = ed25519_line() + "\n" + key_corpus.private_keys["openssh-ed25519"]
    refused(text, "private-key")


def test_oversized_private_key_is_refused_as_private(key_corpus: KeyCorpus) -> None:
    """If a private key is also over the size limit, then the private key message wins."""
    text = key_corpus.private_keys["pem-rsa"] + "\n" * (MAX_PUBLIC_KEY_BYTES + 1)
    refused(text, "private-key")


def test_private_key_in_the_comment_is_refused() -> None:
    """If a private key's armour line is in the comment, then the text is refused as private."""
    refused(ed25519_line("-----BEGIN OPENSSH PRIVATE KEY-----"), "private-key")


@pytest.mark.parametrize("kind", KINDS)
def test_public_keys_do_not_look_like_private_keys(key_corpus: KeyCorpus, kind: str) -> None:
    """If a real public key is checked, then looks_like_private_key says no."""
    assert not looks_like_private_key(key_corpus.keys[kind].public_text)
    assert not looks_like_private_key(export_rfc4716(key_corpus.keys[kind]))


def test_looks_like_private_key_says_no_to_non_text() -> None:
    """If looks_like_private_key gets no text at all, then it says no rather than raising."""
    assert not looks_like_private_key(cast(str, b"-----BEGIN OPENSSH PRIVATE KEY-----"))


# --- Malformed key data ---


def test_type_token_differing_from_the_blob_is_refused() -> None:
    """If the line says ssh-rsa but the blob is an Ed25519 key, then the mismatch is named."""
    message = refused(openssh_line("ssh-rsa", ed25519_blob()), "type-mismatch")
    assert "ssh-ed25519" in message


def test_type_token_differing_from_an_unknown_blob_type_is_refused() -> None:
    """If the blob's type is garbage, then the mismatch is reported without repeating it."""
    blob = ssh_string(b"\x1b[31mevil") + ssh_string(bytes(32))
    message = refused(openssh_line("ssh-ed25519", blob), "type-mismatch")
    assert "evil" not in message


def test_ecdsa_type_differing_from_the_blobs_curve_is_refused() -> None:
    """If the line says nistp384 but the blob holds a nistp256 key, then it is a type mismatch."""
    refused(openssh_line("ecdsa-sha2-nistp384", ecdsa_blob(256)), "type-mismatch")


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: data[:20] + "!" + data[21:],
        lambda data: data[:20] + "é" + data[21:],
        lambda data: data.rstrip("="),
        lambda data: data + "=",
        lambda data: data[:-1],
    ],
    ids=["bad-character", "non-ascii", "missing-padding", "extra-padding", "cut-character"],
)
def test_bad_base64_is_refused(corrupt: object) -> None:
    """If the base64 is not strictly valid, then it is refused as bad base64."""
    data = base64.b64encode(ecdsa_blob(256)).decode()  # 104 bytes: ends with one "="
    assert data.endswith("=") and not data.endswith("==")
    refused(f"ecdsa-sha2-nistp256 {corrupt(data)}", "bad-base64")  # type: ignore[operator]


def test_base64_with_stray_bits_is_refused() -> None:
    """If the last base64 character carries non-zero unused bits, then it is refused."""
    data = base64.b64encode(ecdsa_blob(256)).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(data[-2])
    assert last & 3 == 0  # the two unused bits of a canonical encoding
    stray = data[:-2] + alphabet[last | 1] + "="
    assert base64.b64decode(stray) == base64.b64decode(data)  # same bytes, another spelling
    refused(f"ecdsa-sha2-nistp256 {stray}", "bad-base64")


@pytest.mark.parametrize("keep", [3, 10, 40, -1])
def test_truncated_blob_is_refused(keep: int) -> None:
    """If the blob is cut short anywhere, then it is refused as truncated."""
    blob = ed25519_blob()
    assert "cut short" in refused(openssh_line("ssh-ed25519", blob[:keep]), "truncated")


def test_sk_key_without_its_application_is_truncated() -> None:
    """If an sk key lacks its application string, then it is refused as truncated."""
    blob = sk_ed25519_blob()
    refused(openssh_line("sk-ssh-ed25519@openssh.com", blob[: -len(b"ssh:") - 4]), "truncated")


@pytest.mark.parametrize(
    "blob", [ed25519_blob() + b"\x00", sk_ecdsa256_blob() + ssh_string(b"more")]
)
def test_trailing_bytes_are_refused(blob: bytes) -> None:
    """If bytes follow the key's last field, then the key is refused."""
    refused(openssh_line(blob[4 : 4 + blob[3]].decode(), blob), "trailing-bytes")


def test_curve_name_inside_differing_from_the_type_is_refused() -> None:
    """If an ecdsa-sha2-nistp384 blob names the curve nistp256, then it is refused."""
    point = ecdsa_blob(384)[-97:]
    blob = ssh_string(b"ecdsa-sha2-nistp384") + ssh_string(b"nistp256") + ssh_string(point)
    assert "curve" in refused(openssh_line("ecdsa-sha2-nistp384", blob), "curve-mismatch")


def test_ec_point_off_its_curve_is_refused() -> None:
    """If the EC point is not on its curve, then the key is refused as corrupt."""
    point = bytearray(ecdsa_blob(256)[-65:])
    point[-1] ^= 1
    message = refused(
        openssh_line("ecdsa-sha2-nistp256", ecdsa_blob(256, bytes(point))), "invalid-point"
    )
    assert "not on its curve" in message


def test_compressed_ec_point_is_refused() -> None:
    """If the EC point is compressed, which OpenSSH never writes, then it is refused."""
    point = ecdsa_blob(256)[-65:]
    compressed = bytes([2 + (point[-1] & 1)]) + point[1:33]
    refused(openssh_line("ecdsa-sha2-nistp256", ecdsa_blob(256, compressed)), "invalid-point")


def test_sk_ecdsa_point_off_its_curve_is_refused() -> None:
    """If an sk-ecdsa key's point is off its curve, then it is refused too."""
    blob = bytearray(sk_ecdsa256_blob())
    blob[-9] ^= 1  # the point's last byte, just before the application string
    refused(openssh_line("sk-ecdsa-sha2-nistp256@openssh.com", bytes(blob)), "invalid-point")


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_ed25519_key_of_the_wrong_length_is_refused(length: int) -> None:
    """If an Ed25519 key is not 32 bytes, then it is refused and the message says 32."""
    message = refused(
        openssh_line("ssh-ed25519", ed25519_blob(bytes(range(length)))), "ed25519-length"
    )
    assert "32" in message


@pytest.mark.parametrize("exponent", [0, 1, 2, 65536])
def test_rsa_exponent_even_or_one_is_refused(key_corpus: KeyCorpus, exponent: int) -> None:
    """If the RSA exponent is even or 1, then the key is refused."""
    blob = rsa_blob(exponent, real_rsa_modulus(key_corpus))
    assert "exponent" in refused(openssh_line("ssh-rsa", blob), "rsa-exponent")


def test_rsa_even_modulus_is_refused(key_corpus: KeyCorpus) -> None:
    """If the RSA modulus is even, then the key is refused."""
    blob = rsa_blob(65537, real_rsa_modulus(key_corpus) + 1)
    refused(openssh_line("ssh-rsa", blob), "rsa-modulus")


def test_rsa_exponent_not_below_the_modulus_is_refused(key_corpus: KeyCorpus) -> None:
    """If the RSA exponent is as large as the modulus, then cryptography's refusal is reported."""
    modulus = real_rsa_modulus(key_corpus)
    refused(openssh_line("ssh-rsa", rsa_blob(modulus + 2, modulus)), "invalid-key")


@pytest.mark.parametrize("bits", [16385, 16400, 20000])
def test_rsa_modulus_over_16384_bits_is_refused(bits: int) -> None:
    """If the RSA modulus has more than 16384 bits, then it is refused as too large."""
    message = refused(
        openssh_line("ssh-rsa", rsa_blob(65537, random_modulus(bits))), "rsa-too-large"
    )
    assert "16384" in message


@pytest.mark.parametrize(
    "blob",
    [
        ssh_string(b"ssh-rsa") + ssh_string(b"\x00\x01\x00\x01") + ssh_mpint(random_modulus(2048)),
        ssh_string(b"ssh-rsa")
        + ssh_mpint(65537)
        + ssh_string(b"\x00" + random_modulus(2048).to_bytes(257, "big")),
        ssh_string(b"ssh-rsa")
        + ssh_mpint(65537)
        + ssh_string(random_modulus(2048).to_bytes(256, "big")),
    ],
    ids=["exponent-leading-zero", "modulus-two-leading-zeros", "modulus-negative"],
)
def test_rsa_numbers_not_in_shortest_positive_form_are_refused(blob: bytes) -> None:
    """If an RSA mpint is negative or padded, then it is refused: one key has one encoding."""
    refused(openssh_line("ssh-rsa", blob), "bad-encoding")


# --- Framing ---


@pytest.mark.parametrize("text", ["", "   ", "\n\r\n\t ", "\ufeff"])
def test_empty_input_is_refused(text: str) -> None:
    """If nothing but whitespace is pasted, then the message asks for the .pub file."""
    assert ".pub" in refused(text, "empty")


def test_input_over_16_kib_is_refused() -> None:
    """If the input is 17 KiB, then it is refused as too large."""
    refused(ed25519_line("x" * 17 * 1024), "too-large")


def test_size_limit_is_16384_bytes() -> None:
    """If the input is exactly 16384 bytes, then it is accepted, and one byte more is not."""
    line = ed25519_line()
    padding = MAX_PUBLIC_KEY_BYTES - len(line) - 1
    assert parse_public_key(f"{line} {'x' * padding}").comment == "x" * padding
    refused(f"{line} {'x' * (padding + 1)}", "too-large")


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    """If the text has fewer characters than the limit but more UTF-8 bytes, then it is refused."""
    line = ed25519_line()
    comment = "é" * ((MAX_PUBLIC_KEY_BYTES - len(line)) // 2 + 1)  # 2 bytes each
    assert len(f"{line} {comment}") < MAX_PUBLIC_KEY_BYTES
    refused(f"{line} {comment}", "too-large")


def test_two_keys_on_two_lines_are_refused() -> None:
    """If two keys are pasted on two lines, then the message says one key at a time."""
    assert "one key at a time" in refused(
        ed25519_line("a") + "\n" + ed25519_line("b"), "multiple-keys"
    )


def test_a_key_broken_over_two_lines_is_refused() -> None:
    """If one key's line was broken in two, then it is refused as several lines."""
    line = ed25519_line("laptop")
    message = refused(line[:40] + "\n" + line[40:], "multiple-lines")
    assert "one key at a time" in message


def test_key_held_in_the_comment_is_refused() -> None:
    """If the comment holds another key, then the line is refused: one key at a time."""
    text = ed25519_line("laptop " + openssh_line("ssh-rsa", rsa_blob(65537, random_modulus(2048))))
    assert "one key at a time" in refused(text, "key-in-comment")


def test_key_glued_to_the_comment_without_type_is_not_a_second_key() -> None:
    """If the comment holds base64 with no key type before it, then it is just a comment."""
    data = base64.b64encode(ed25519_blob()).decode()
    assert parse_public_key(ed25519_line(f"backup {data}")).comment == f"backup {data}"


@pytest.mark.parametrize(
    "prefix",
    [
        'command="echo hi; exit" ',
        'no-pty,from="10.0.0.1,192.168.*" ',
        "restrict ",
        'environment="A=B",no-agent-forwarding ',
        'from="*.example.com" restrict,pty ',
    ],
)
def test_authorized_keys_options_are_refused(prefix: str) -> None:
    """If the line starts with authorized_keys options, then the message says to remove them."""
    message = refused(prefix + ed25519_line("laptop"), "options-prefix")
    assert "options" in message
    assert "starts with the key type" in message


def test_options_before_an_unknown_key_type_are_still_named() -> None:
    """If options come before a key type we do not know, then the options are still named."""
    refused('command="x" ssh-ed448 AAAAC3NzaC1lZDQ0OAAAADkAAAAA', "options-prefix")


@pytest.mark.parametrize(
    "character", ["\x00", "\x1b", "\x7f", "\x1c", "\x85", "\x9b", "\u202e", "\ud800"]
)
def test_control_character_in_the_comment_is_refused(character: str) -> None:
    """If the comment holds a control character, then the key is refused."""
    message = refused(ed25519_line(f"my{character}laptop"), "comment-control-characters")
    assert "control characters" in message


def test_key_type_without_key_data_is_refused() -> None:
    """If only the key type is pasted, then the message says the key data is missing."""
    refused("ssh-ed25519", "missing-key-data")


def test_key_data_without_key_type_is_refused() -> None:
    """If the key data is pasted without its type, then the message names the type to add."""
    data = base64.b64encode(ed25519_blob()).decode()
    assert "ssh-ed25519" in refused(f"{data} laptop", "missing-type")


def test_non_text_is_refused() -> None:
    """If the parser is given bytes, then it raises PublicKeyError rather than TypeError."""
    refused(cast(str, ed25519_line().encode()), "not-text")
