"""POST /gpu-cloud/ssh-keys: the created key, and every way a create is refused (SPEC 1, 3, 4)."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.helpers import (
    DTO_FIELDS,
    OBJECT_ID,
    PREFIX,
    TIMESTAMP,
    assert_error,
    auth,
    create_key,
    list_keys,
)
from tests.support import keygen
from tests.support.keygen import GeneratedKey, KeyCorpus

MAX_BODY = 64 * 1024


def _type_and_blob(key: GeneratedKey) -> str:
    """`TYPE BASE64` of a key, without its comment."""
    key_type, blob = key.public_line.split()[:2]
    return f"{key_type} {blob}"


def _padded_body(name: str, public_key: str, size: int) -> bytes:
    """A JSON create body of exactly `size` bytes, padded with an ignored extra property."""
    base = json.dumps({"name": name, "publicKey": public_key, "padding": ""}).encode()
    padded = json.dumps(
        {"name": name, "publicKey": public_key, "padding": "x" * (size - len(base))}
    )
    body = padded.encode()
    assert len(body) == size
    return body


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    """The body as a stream without a Content-Length (chunked transfer encoding)."""
    for start in range(0, len(body), 8192):
        yield body[start : start + 8192]


# The created key


async def test_a_created_key_is_answered_with_201_and_exactly_the_ssh_key_dto(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key is created, then the 201 body is an SSHKeyDto with exactly its ten fields."""
    before = dt.datetime.now(dt.UTC)
    response = await client.post(
        PREFIX,
        headers=auth(alice),
        json={"name": "laptop", "publicKey": ed25519_keys[0].public_text},
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == DTO_FIELDS
    assert OBJECT_ID.fullmatch(body["_id"]), body["_id"]
    assert body["name"] == "laptop"
    assert body["publicKey"] == ed25519_keys[0].public_line
    assert body["isDefault"] is True
    assert body["keyType"] == "ssh-ed25519"
    assert body["keyBits"] == 256
    for field in ("createdAt", "updatedAt"):
        assert TIMESTAMP.fullmatch(body[field]), body[field]
    assert body["createdAt"] == body["updatedAt"]
    created = dt.datetime.strptime(body["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.UTC
    )
    # UTC, and now: not the server's local time.
    assert before - dt.timedelta(seconds=1) <= created <= dt.datetime.now(dt.UTC)


async def test_a_created_key_has_a_location_header_that_leads_to_it(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key is created, then Location is /gpu-cloud/ssh-keys/{id} and GET there returns it."""
    response = await client.post(
        PREFIX,
        headers=auth(alice),
        json={"name": "laptop", "publicKey": ed25519_keys[0].public_text},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{PREFIX}/{created['_id']}"
    fetched = await client.get(response.headers["location"], headers=auth(alice))
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == created
    assert await list_keys(client, alice) == [created]


async def test_ids_carry_64_random_bits_so_that_they_cannot_be_guessed(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If keys are created one after another, then their last 16 hex digits differ almost everywhere."""
    ids = [
        (await create_key(client, alice, f"key{i}", key.public_text))["_id"]
        for i, key in enumerate(ed25519_keys[:4])
    ]
    assert all(OBJECT_ID.fullmatch(key_id) for key_id in ids), ids
    # Random digits agree in 1 place of 16 on average; 9 or more agreeing places has a
    # chance under 1e-6, while a counter or a per-process constant (MongoDB's ObjectId)
    # leaves most places equal.
    tails = [key_id[-16:] for key_id in ids]
    for i, first in enumerate(tails):
        for second in tails[i + 1 :]:
            differing = sum(a != b for a, b in zip(first, second, strict=True))
            assert differing >= 8, (first, second)


async def test_fingerprints_and_size_of_every_accepted_kind_are_what_ssh_keygen_prints(
    client: httpx.AsyncClient,
    alice: str,
    key_corpus: KeyCorpus,
    key_dir: Path,
    subtests: pytest.Subtests,
) -> None:
    """If a key of each accepted kind is created, then fingerprints and keyBits equal ssh-keygen -l's."""
    for kind in keygen.ACCEPTED_KINDS:
        with subtests.test(kind=kind):
            key = key_corpus.keys[kind]
            body = await create_key(client, alice, kind, key.public_text)
            bits, sha256 = keygen.fingerprint(key_dir, key.public_text, "sha256")
            _, md5 = keygen.fingerprint(key_dir, key.public_text, "md5")
            assert (body["fingerprint"], body["fingerprintMd5"], body["keyBits"]) == (
                sha256,
                md5,
                bits,
            )
            assert body["keyType"] == key.public_line.split()[0]
            assert body["publicKey"] == key.public_line


async def test_the_stored_key_line_is_canonical(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    subtests: pytest.Subtests,
) -> None:
    """If a key line comes without a comment, or with extra whitespace, then it is stored canonical."""
    key_type, blob = _type_and_blob(ed25519_keys[0]).split()
    other_type, other_blob = _type_and_blob(ed25519_keys[1]).split()
    cases = [
        ("no comment", f"{key_type} {blob}", f"{key_type} {blob}"),
        (
            "extra whitespace and line breaks",
            f" \r\n\t{other_type}   {other_blob} \t ada   at\t\tlaptop  \r\n\n",
            f"{other_type} {other_blob} ada at laptop",
        ),
    ]
    for label, sent, stored in cases:
        with subtests.test(label):
            body = await create_key(client, alice, label, sent)
            assert body["publicKey"] == stored


async def test_an_rfc_4716_block_is_accepted_and_stored_as_an_openssh_line(
    client: httpx.AsyncClient, alice: str, key_corpus: KeyCorpus
) -> None:
    """If an RFC 4716 block is sent, then it is stored as the OpenSSH line, its Comment unquoted."""
    key = key_corpus.keys["rsa4096"]
    key_type, blob = _type_and_blob(key).split()
    block = "\n".join(
        [
            "---- BEGIN SSH2 PUBLIC KEY ----",
            'Comment: "ada@laptop"',
            *textwrap.wrap(blob, 70),
            "---- END SSH2 PUBLIC KEY ----",
            "",
        ]
    )
    body = await create_key(client, alice, "laptop", block)
    assert body["publicKey"] == f"{key_type} {blob} ada@laptop"
    assert body["keyType"] == "ssh-rsa"
    assert body["keyBits"] == 4096


async def test_the_block_ssh_keygen_exports_registers_the_same_key(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey], key_dir: Path
) -> None:
    """If `ssh-keygen -e` output is sent, then the stored key has the original's type, data, fingerprint."""
    key = ed25519_keys[0]
    body = await create_key(client, alice, "exported", keygen.export_rfc4716(key))
    assert body["publicKey"].split()[:2] == key.public_line.split()[:2]
    assert body["fingerprint"] == keygen.fingerprint(key_dir, key.public_text, "sha256")[1]


async def test_the_name_is_stored_trimmed(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the name has white space at both ends, then it is stored without it."""
    body = await create_key(client, alice, " \t laptop key \n ", ed25519_keys[0].public_text)
    assert body["name"] == "laptop key"
    assert (await list_keys(client, alice))[0]["name"] == "laptop key"


async def test_a_name_of_128_characters_is_accepted(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the name is 128 code points long, even of multibyte ones, then it is stored whole."""
    names = ["k" * 128, "é" * 128, "🔑" * 128]
    for name, key in zip(names, ed25519_keys, strict=False):
        body = await create_key(client, alice, name, key.public_text)
        assert body["name"] == name
    assert [key["name"] for key in await list_keys(client, alice)] == names


async def test_unknown_extra_properties_are_ignored(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the body carries extra properties (even DTO ones), then they are ignored."""
    forged_id = "f" * 24
    response = await client.post(
        PREFIX,
        headers=auth(alice),
        json={
            "name": "laptop",
            "publicKey": ed25519_keys[0].public_text,
            "_id": forged_id,
            "isDefault": False,
            "createdAt": "2000-01-01T00:00:00.000Z",
            "owner": "bob",
            "comment": {"nested": [1, 2]},
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["_id"] != forged_id
    assert body["isDefault"] is True
    assert body["createdAt"] != "2000-01-01T00:00:00.000Z"
    assert set(body) == DTO_FIELDS


async def test_a_json_content_type_with_a_charset_is_accepted(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If Content-Type is `application/json; charset=utf-8`, then the key is created."""
    response = await client.post(
        PREFIX,
        headers={**auth(alice), "content-type": "application/json; charset=utf-8"},
        content=json.dumps({"name": "laptop", "publicKey": ed25519_keys[0].public_text}),
    )
    assert response.status_code == 201, response.text


async def test_a_body_of_exactly_64_kib_is_accepted(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the body is exactly 64 KiB, then it is not too large and the key is created."""
    response = await client.post(
        PREFIX,
        headers={**auth(alice), "content-type": "application/json"},
        content=_padded_body("laptop", ed25519_keys[0].public_text, MAX_BODY),
    )
    assert response.status_code == 201, response.text


# Refusals: nothing is written, and the error says what to change


@pytest.fixture
async def existing(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> list[dict[str, Any]]:
    """alice's keys after she registered one, `laptop` (ed25519_keys[0]); the list as it then is."""
    await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    return await list_keys(client, alice)


MISTYPED_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("name missing", {"publicKey": "PUBLIC"}, "name"),
    ("publicKey missing", {"name": "desktop"}, "publicKey"),
    ("both missing", {}, "name"),
    ("name a number", {"name": 5, "publicKey": "PUBLIC"}, "name"),
    ("name null", {"name": None, "publicKey": "PUBLIC"}, "name"),
    ("name an array", {"name": ["desktop"], "publicKey": "PUBLIC"}, "name"),
    ("name a boolean", {"name": True, "publicKey": "PUBLIC"}, "name"),
    ("publicKey a number", {"name": "desktop", "publicKey": 5}, "publicKey"),
    ("publicKey an object", {"name": "desktop", "publicKey": {"k": "PUBLIC"}}, "publicKey"),
]


async def test_a_missing_or_mistyped_field_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If a field is missing or not a string, then the answer is a 400 whose message names it."""
    for label, template, field in MISTYPED_BODIES:
        with subtests.test(label):
            body = {
                k: ed25519_keys[1].public_text if v == "PUBLIC" else v for k, v in template.items()
            }
            response = await client.post(PREFIX, headers=auth(alice), json=body)
            error = assert_error(response, 400)
            assert field in error["message"], error
            assert await list_keys(client, alice) == existing


INVALID_NAMES = [
    ("empty", ""),
    ("spaces only", "   "),
    ("tab and newline only", "\t\n"),
    ("129 ASCII characters", "k" * 129),
    ("129 two-byte characters", "é" * 129),
    ("129 four-byte characters", "🔑" * 129),
]
CONTROL_CHARACTER_NAMES = [
    ("NUL", "lap\x00top"),
    ("bell", "lap\x07top"),
    ("newline", "lap\ntop"),
    ("tab", "lap\ttop"),
    ("escape", "lap\x1btop"),
    ("delete", "lap\x7ftop"),
    ("C1 next line", "lap\x85top"),
]


async def test_an_empty_or_too_long_name_is_a_400(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If the trimmed name is empty or over 128 code points, then the answer is a 400 about the name."""
    for label, name in INVALID_NAMES:
        with subtests.test(label):
            response = await client.post(
                PREFIX,
                headers=auth(alice),
                json={"name": name, "publicKey": ed25519_keys[1].public_text},
            )
            error = assert_error(response, 400)
            assert "name" in error["message"], error
            assert await list_keys(client, alice) == existing


async def test_a_name_with_a_control_character_is_a_400(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If the name holds a control character, then the answer is a 400 that says so."""
    for label, name in CONTROL_CHARACTER_NAMES:
        with subtests.test(label):
            response = await client.post(
                PREFIX,
                headers=auth(alice),
                json={"name": name, "publicKey": ed25519_keys[1].public_text},
            )
            error = assert_error(response, 400)
            assert "name" in error["message"], error
            assert "control" in error["message"], error
            assert await list_keys(client, alice) == existing


NOT_JSON_OBJECTS = [
    ("empty", b""),
    ("blank", b"   "),
    ("broken", b"{not json"),
    ("trailing comma", b'{"name": "laptop",}'),
    ("empty array", b"[]"),
    ("array of an object", b'[{"name": "x"}]'),
    ("string", b'"text"'),
    ("null", b"null"),
    ("number", b"42"),
    ("invalid UTF-8", b'{"name": "\xff\xfe"}'),
    ("nested 5000 deep", b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("NaN", b'{"name": NaN, "publicKey": "x"}'),
]


async def test_a_json_content_type_with_a_body_that_is_not_a_json_object_is_a_400(
    client: httpx.AsyncClient,
    alice: str,
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If the body is sent as JSON but is not a JSON object, then the answer is a 400, not a 415."""
    for label, content in NOT_JSON_OBJECTS:
        with subtests.test(label):
            response = await client.post(
                PREFIX, headers={**auth(alice), "content-type": "application/json"}, content=content
            )
            assert_error(response, 400)
            assert await list_keys(client, alice) == existing


WRONG_CONTENT_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/jsonp",
    "application/json-patch+json",
    "multipart/form-data; boundary=x",
]


async def test_a_body_not_sent_as_application_json_is_a_415(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If the Content-Type is missing or not application/json, then the answer is a 415."""
    content = json.dumps({"name": "desktop", "publicKey": ed25519_keys[1].public_text}).encode()
    for content_type in WRONG_CONTENT_TYPES:
        with subtests.test(content_type=content_type):
            headers = auth(alice)
            if content_type is not None:
                headers["content-type"] = content_type
            response = await client.post(PREFIX, headers=headers, content=content)
            assert response.request.headers.get("content-type") == content_type
            assert_error(response, 415)
            assert await list_keys(client, alice) == existing


async def test_a_body_over_64_kib_is_a_413(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If the body is one byte over 64 KiB, declared or streamed, then the answer is a 413."""
    body = _padded_body("desktop", ed25519_keys[1].public_text, MAX_BODY + 1)
    for framing in ("content-length", "chunked"):
        with subtests.test(framing=framing):
            content = body if framing == "content-length" else _chunks(body)
            response = await client.post(
                PREFIX, headers={**auth(alice), "content-type": "application/json"}, content=content
            )
            assert_error(response, 413)
            assert await list_keys(client, alice) == existing


async def test_a_second_registration_of_the_same_key_is_a_409_naming_the_existing_key(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
) -> None:
    """If the same public key is sent again under another name, then a 409 names the key it duplicates."""
    response = await client.post(
        PREFIX,
        headers=auth(alice),
        json={"name": "desktop", "publicKey": ed25519_keys[0].public_text},
    )
    error = assert_error(response, 409)
    assert '"laptop"' in error["message"], error
    assert await list_keys(client, alice) == existing


async def test_the_same_key_in_another_spelling_is_still_a_duplicate(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If the same key comes with another comment, none, or as a block, then it is a 409 duplicate."""
    key = ed25519_keys[0]
    spellings = {
        "another comment": f"{_type_and_blob(key)} someone@elsewhere",
        "no comment": _type_and_blob(key),
        "RFC 4716 block": keygen.export_rfc4716(key),
    }
    for label, spelling in spellings.items():
        with subtests.test(label):
            response = await client.post(
                PREFIX, headers=auth(alice), json={"name": "desktop", "publicKey": spelling}
            )
            assert_error(response, 409, 'This SSH key is already registered as "laptop"')
            assert await list_keys(client, alice) == existing


async def test_a_second_key_with_a_taken_name_is_a_409(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If another key is sent under a name already used (after trimming), then the answer is a 409."""
    for name in ("laptop", "  laptop\t"):
        with subtests.test(name=name):
            response = await client.post(
                PREFIX,
                headers=auth(alice),
                json={"name": name, "publicKey": ed25519_keys[1].public_text},
            )
            error = assert_error(response, 409)
            assert '"laptop"' in error["message"], error
            assert await list_keys(client, alice) == existing


async def test_names_are_compared_exactly(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
) -> None:
    """If names differ from a taken one only by case or one character, then they are all accepted."""
    names = ["Laptop", "LAPTOP", "laptop2", "lap top"]
    for name, key in zip(names, ed25519_keys[1:], strict=False):
        body = await create_key(client, alice, name, key.public_text)
        assert body["name"] == name
    assert [key["name"] for key in await list_keys(client, alice)] == ["laptop", *names]


async def test_names_that_differ_only_in_unicode_normalization_are_different_names(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If two names are the same text in NFC and NFD, then both are accepted, as written."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    first = await create_key(client, alice, composed, ed25519_keys[0].public_text)
    second = await create_key(client, alice, decomposed, ed25519_keys[1].public_text)
    assert (first["name"], second["name"]) == (composed, decomposed)


# The order of checks (SPEC 4): API key (test_auth.py); body size; content type; JSON
# and field types; name; key; the owner's limit (test_key_limit.py); duplicate key;
# duplicate name.


async def test_when_several_things_are_wrong_the_first_check_of_the_spec_order_answers(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    existing: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If a create breaks several rules, then the answer is that of the rule checked first."""
    oversized = _padded_body("desktop", ed25519_keys[1].public_text, MAX_BODY + 1)
    as_text = {**auth(alice), "content-type": "text/plain"}
    as_json = {**auth(alice), "content-type": "application/json"}

    def body(name: Any, public_key: str | None) -> bytes:
        fields = {"name": name} if public_key is None else {"name": name, "publicKey": public_key}
        return json.dumps(fields).encode()

    laptop_again = ed25519_keys[0].public_text
    cases: list[tuple[str, dict[str, str], bytes | AsyncIterator[bytes], int, str]] = [
        ("size before content type", as_text, oversized, 413, "KiB"),
        ("size before content type, streamed", as_text, _chunks(oversized), 413, "KiB"),
        ("content type before JSON", as_text, b"ssh-ed25519 AAAA", 415, "JSON"),
        ("field types before the name", as_json, body("  ", None), 400, "publicKey"),
        ("field types before the key", as_json, body(5, "ssh-dss AAAA"), 400, "name"),
        ("the name before the key", as_json, body("", "ssh-dss AAAA"), 400, "name"),
        ("the key before a duplicate name", as_json, body("laptop", "not a key"), 400, "publicKey"),
        (
            "a duplicate key before a duplicate name",
            as_json,
            body("laptop", laptop_again),
            409,
            'This SSH key is already registered as "laptop"',
        ),
    ]
    for label, headers, content, status, says in cases:
        with subtests.test(label):
            response = await client.post(PREFIX, headers=headers, content=content)
            error = assert_error(response, status)
            assert says in error["message"], error
            if label == "the name before the key":
                assert "publicKey" not in error["message"], error
            assert await list_keys(client, alice) == existing
