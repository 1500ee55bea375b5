"""The login lookup (SPEC 10): `authorized_keys?fingerprint=` answers one key's line,
with its own strong ETag, and records the key's lastUsedAt to the minute."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import httpx

from gpucloud.wire import iso_timestamp
from tests.functional.helpers import PREFIX, assert_error, auth, create_key, get_key, list_keys
from tests.support.keygen import GeneratedKey

MakeAPIKey = Callable[..., Awaitable[str]]
AUTHORIZED_KEYS = f"{PREFIX}/authorized_keys"


async def _lookup(
    client: httpx.AsyncClient, secret: str, fingerprint: str, etag: str | None = None
) -> httpx.Response:
    headers = auth(secret) | ({"if-none-match": etag} if etag else {})
    return await client.get(AUTHORIZED_KEYS, headers=headers, params={"fingerprint": fingerprint})


async def test_a_lookup_answers_only_that_keys_line(
    client: httpx.AsyncClient,
    alice: str,
    bob: str,
    make_api_key: MakeAPIKey,
    ed25519_keys: list[GeneratedKey],
) -> None:
    """If an instance's authorized-keys credential asks for one fingerprint, then the
    answer is that key's line alone; a fingerprint the owner has not registered (or
    another owner's) is an empty 200."""
    first = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    await create_key(client, alice, "desktop", ed25519_keys[1].public_text)
    bobs = await create_key(client, bob, "bob", ed25519_keys[2].public_text)
    instance = await make_api_key("alice", scopes=("authorized-keys",))
    found = await _lookup(client, instance, first["fingerprint"])
    assert found.status_code == 200, found.text
    assert found.text == f"{first['publicKey']}\n"
    assert found.headers["content-type"].startswith("text/plain")
    for fingerprint in (bobs["fingerprint"], "SHA256:" + "A" * 43):
        empty = await _lookup(client, instance, fingerprint)
        assert (empty.status_code, empty.text) == (200, "")


async def test_a_lookup_records_the_last_use_to_the_minute_and_nothing_else(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key is looked up for a login, then its lastUsedAt becomes the current minute
    (seconds zero) in the list, even one answered earlier from the cache, and get;
    updatedAt does not move, and other keys keep lastUsedAt null."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    other = await create_key(client, alice, "desktop", ed25519_keys[1].public_text)
    assert [k["lastUsedAt"] for k in await list_keys(client, alice)] == [None, None]
    before = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    assert (await _lookup(client, alice, key["fingerprint"])).status_code == 200
    after = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    used = await get_key(client, alice, key["_id"])
    assert used["lastUsedAt"] in {iso_timestamp(before), iso_timestamp(after)}
    assert used["updatedAt"] == key["updatedAt"]
    listed = await list_keys(client, alice)
    assert [k["lastUsedAt"] for k in listed] == [used["lastUsedAt"], None]
    assert listed[1] == other


async def test_a_lookup_has_a_strong_etag_and_answers_304(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a lookup is repeated with the ETag it got, then the answer is a 304 with no body;
    when the key's line changes (an expiry set), the old tag gets the new line; the
    empty answer has a tag of its own."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    first = await _lookup(client, alice, key["fingerprint"])
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = await _lookup(client, alice, key["fingerprint"], etag)
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    expires = iso_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    url = f"{PREFIX}/{key['_id']}"
    await client.patch(url, headers=auth(alice), json={"expiresAt": expires})
    changed = await _lookup(client, alice, key["fingerprint"], etag)
    assert changed.status_code == 200
    assert changed.text.startswith('expiry-time="')
    assert changed.headers["etag"] != etag
    empty = await _lookup(client, alice, "SHA256:" + "B" * 43)
    assert empty.headers["etag"] not in {etag, changed.headers["etag"]}
    assert (
        await _lookup(client, alice, "SHA256:" + "B" * 43, empty.headers["etag"])
    ).status_code == 304


async def test_a_lookup_answered_304_still_records_the_use(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the instance's cached copy is current (304), then the login still counts as a
    use of the key."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    etag = (await client.get(AUTHORIZED_KEYS, headers=auth(alice))).headers["etag"]
    # The whole file of one key is that key's line: the same bytes, the same tag.
    answer = await _lookup(client, alice, key["fingerprint"], etag)
    assert answer.status_code == 304
    assert (await get_key(client, alice, key["_id"]))["lastUsedAt"] is not None


async def test_an_expired_key_is_not_answered_nor_recorded(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the looked-up key has expired, then the answer is empty and its lastUsedAt stays
    null."""
    soon = iso_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=200))
    body = {"name": "short", "publicKey": ed25519_keys[0].public_text, "expiresAt": soon}
    key = (await client.post(PREFIX, headers=auth(alice), json=body)).json()
    while dt.datetime.now(dt.UTC) <= dt.datetime.fromisoformat(soon):
        await client.get(PREFIX, headers=auth(alice))
    answer = await _lookup(client, alice, key["fingerprint"])
    assert (answer.status_code, answer.text) == (200, "")
    assert (await get_key(client, alice, key["_id"]))["lastUsedAt"] is None


async def test_a_fingerprint_that_is_not_sha256_is_a_400(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the fingerprint is MD5, empty or not a fingerprint, then the lookup is a 400 that
    says to send sshd's SHA256:… form."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    for fingerprint in (key["fingerprintMd5"], "", "laptop", "SHA256:", "SHA256:\x00"):
        answer = await _lookup(client, alice, fingerprint)
        assert "SHA256:" in assert_error(answer, 400)["message"], fingerprint
