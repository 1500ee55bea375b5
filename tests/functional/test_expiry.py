"""Expiry of an SSH key (SPEC 9): set when created or later, listed always, served never
after it passes, and written as sshd's expiry-time so that a cached copy stops too."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest

from gpucloud.wire import iso_timestamp
from tests.functional.helpers import (
    PREFIX,
    TIMESTAMP,
    assert_error,
    auth,
    create_key,
    get_key,
    list_keys,
)
from tests.support.keygen import GeneratedKey

AUTHORIZED_KEYS = f"{PREFIX}/authorized_keys"


def _in(seconds: float) -> str:
    return iso_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))


async def _create(
    client: httpx.AsyncClient, secret: str, name: str, public_key: str, expires_at: Any
) -> httpx.Response:
    body = {"name": name, "publicKey": public_key, "expiresAt": expires_at}
    return await client.post(PREFIX, headers=auth(secret), json=body)


async def _file(client: httpx.AsyncClient, secret: str) -> str:
    response = await client.get(AUTHORIZED_KEYS, headers=auth(secret))
    assert response.status_code == 200, response.text
    return response.text


def _sshd_time(wire: str) -> str:
    return dt.datetime.fromisoformat(wire).strftime("%Y%m%d%H%M%SZ")


async def test_an_expiry_given_at_creation_is_shown_everywhere(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key is created with a future expiresAt, then the answer, the list and the key
    show it (in the createdAt format) and lastUsedAt is null; a key made without one shows
    expiresAt null."""
    expires = _in(3600)
    response = await _create(client, alice, "laptop", ed25519_keys[0].public_text, expires)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["expiresAt"] == expires
    assert created["lastUsedAt"] is None
    assert (await get_key(client, alice, created["_id"]))["expiresAt"] == expires
    plain = await create_key(client, alice, "desktop", ed25519_keys[1].public_text)
    assert plain["expiresAt"] is None and plain["lastUsedAt"] is None
    assert [k["expiresAt"] for k in await list_keys(client, alice)] == [expires, None]


@pytest.mark.parametrize(
    ("expires_at", "says"),
    [
        ("2020-01-01T00:00:00.000Z", "not in the future"),
        ("tomorrow", "is not a time"),
        ("2030-01-01T00:00:00", "is not a time"),  # no offset: which time zone?
        ("2030-13-01T00:00:00.000Z", "is not a time"),
        (1893456000, "expiresAt"),
    ],
)
async def test_an_expiry_that_is_past_or_unreadable_is_a_400(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    expires_at: Any,
    says: str,
) -> None:
    """If expiresAt is in the past, not a time, without an offset or not a string, then
    the create is a 400 whose message names expiresAt, and no key is made."""
    response = await _create(client, alice, "laptop", ed25519_keys[0].public_text, expires_at)
    body = assert_error(response, 400)
    assert says in body["message"] and "expiresAt" in body["message"], body
    assert await list_keys(client, alice) == []


async def test_the_update_sets_changes_and_removes_the_expiry(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If PATCH sends expiresAt (alone, with a name, or null), then the key's expiry
    becomes it and updatedAt moves; the same expiry again changes nothing."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    url = f"{PREFIX}/{key['_id']}"
    expires = _in(3600)
    await asyncio.sleep(0.005)
    first = (await client.patch(url, headers=auth(alice), json={"expiresAt": expires})).json()
    assert (first["name"], first["expiresAt"]) == ("laptop", expires)
    assert first["updatedAt"] > key["updatedAt"]
    again = (await client.patch(url, headers=auth(alice), json={"expiresAt": expires})).json()
    assert again == first
    later = _in(7200)
    await asyncio.sleep(0.005)
    both = await client.patch(url, headers=auth(alice), json={"name": "old", "expiresAt": later})
    assert (both.json()["name"], both.json()["expiresAt"]) == ("old", later)
    assert both.json()["updatedAt"] > first["updatedAt"]
    await asyncio.sleep(0.005)
    cleared = (await client.patch(url, headers=auth(alice), json={"expiresAt": None})).json()
    assert cleared["expiresAt"] is None and cleared["name"] == "old"
    assert cleared["updatedAt"] > both.json()["updatedAt"]
    assert await get_key(client, alice, key["_id"]) == cleared


async def test_an_update_with_nothing_to_change_or_a_past_expiry_is_a_400(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If PATCH sends neither name nor expiresAt, a past expiresAt, or a null name, then it
    is a 400 that says what to send, and the key is unchanged."""
    key = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    url = f"{PREFIX}/{key['_id']}"
    for body, says in (
        ({}, "name, expiresAt or both"),
        ({"other": 1}, "name, expiresAt or both"),
        ({"expiresAt": "2001-01-01T00:00:00.000Z"}, "not in the future"),
        ({"name": None}, "name"),
    ):
        answer = await client.patch(url, headers=auth(alice), json=body)
        assert says in assert_error(answer, 400)["message"], body
    assert await get_key(client, alice, key["_id"]) == key


async def test_an_expiring_key_is_served_with_sshds_expiry_time(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key has an expiry, then its authorized_keys line starts with
    expiry-time="YYYYMMDDHHMMSSZ" (UTC, the second rounded down) and a key without one
    is served bare."""
    expires = _in(86400)[:20] + "999Z"  # rounded down to its second, not up
    await _create(client, alice, "laptop", ed25519_keys[0].public_text, expires)
    await create_key(client, alice, "desktop", ed25519_keys[1].public_text)
    lines = (await _file(client, alice)).splitlines()
    assert lines == [
        f'expiry-time="{_sshd_time(expires)}" {ed25519_keys[0].public_text.strip()}',
        ed25519_keys[1].public_text.strip(),
    ]
    assert TIMESTAMP.fullmatch(expires)


async def test_an_expired_key_stays_listed_but_leaves_the_file_at_its_expiry(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key expires while its owner's authorized_keys answer is kept (same version,
    same ETag asked), then the next answer after the expiry leaves it out with a new ETag,
    and the key is still listed with its expiresAt."""
    short = await _create(client, alice, "short", ed25519_keys[0].public_text, _in(1.0))
    await create_key(client, alice, "stays", ed25519_keys[1].public_text)
    first = await client.get(AUTHORIZED_KEYS, headers=auth(alice))
    assert len(first.text.splitlines()) == 2
    cached = await client.get(
        AUTHORIZED_KEYS, headers={**auth(alice), "if-none-match": first.headers["etag"]}
    )
    assert cached.status_code == 304
    expiry = dt.datetime.fromisoformat(short.json()["expiresAt"])
    await asyncio.sleep(max(0.0, (expiry - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    after = await client.get(
        AUTHORIZED_KEYS, headers={**auth(alice), "if-none-match": first.headers["etag"]}
    )
    assert after.status_code == 200
    assert after.text == f"{ed25519_keys[1].public_text.strip()}\n"
    assert after.headers["etag"] != first.headers["etag"]
    listed = await list_keys(client, alice)
    assert [(k["name"], k["expiresAt"]) for k in listed] == [
        ("short", short.json()["expiresAt"]),
        ("stays", None),
    ]


async def test_an_expired_key_can_be_renamed_made_default_and_deleted(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key has expired, then it can still be renamed, made default and deleted, and
    as the default it is still left out of authorized_keys."""
    await create_key(client, alice, "other", ed25519_keys[1].public_text)
    gone = (await _create(client, alice, "gone", ed25519_keys[0].public_text, _in(0.3))).json()
    await asyncio.sleep(0.4)
    url = f"{PREFIX}/{gone['_id']}"
    renamed = await client.patch(url, headers=auth(alice), json={"name": "expired"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "expired"
    made = await client.patch(f"{url}/makedefault", headers=auth(alice))
    assert made.status_code == 204
    assert await _file(client, alice) == f"{ed25519_keys[1].public_text.strip()}\n"
    revived = await client.patch(url, headers=auth(alice), json={"expiresAt": None})
    assert revived.status_code == 200
    assert (await _file(client, alice)).splitlines()[0] == ed25519_keys[0].public_text.strip()
    assert (await client.delete(url, headers=auth(alice))).status_code == 204
