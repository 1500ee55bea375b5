"""Safe retries (issue #5): `POST /gpu-cloud/ssh-keys` with an `Idempotency-Key` header.

A repeat with the same key and body within 24 hours gets the first answer (status, body,
Location); the same key with another body is a 409. Only successes are stored: a refused
request changed nothing, so its corrected retry is a new request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from gpucloud.app import GpuCloudApp
from gpucloud.db import utcnow
from gpucloud.idempotency.models import idempotency_keys
from tests.functional.helpers import PREFIX, assert_error, auth, list_keys
from tests.support.bulk_keys import ed25519_public_line
from tests.support.keygen import hand_built_weak_key, openssh_line

HEADER = "Idempotency-Key"


async def post(
    client: httpx.AsyncClient, secret: str, body: dict[str, Any], key: str | bytes | None
) -> httpx.Response:
    headers: dict[str, Any] = auth(secret)
    if key is not None:
        headers[HEADER] = key
    return await client.post(PREFIX, headers=headers, json=body)


def new_body(name: str = "laptop") -> dict[str, Any]:
    return {"name": name, "publicKey": ed25519_public_line(f"{name}@host")}


async def age_stored_answers(app: GpuCloudApp, age: dt.timedelta) -> None:
    """Make every stored answer look `age` old."""
    async with app.services.database.write() as conn:
        await conn.run(update(idempotency_keys).values(created_at=utcnow() - age))


async def test_a_repeat_gets_the_first_answer_and_creates_nothing(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If a create is sent twice with the same Idempotency-Key and body, then the second
    answer is the first one (201, byte-identical body, same Location) and one key exists."""
    body = new_body()
    first = await post(client, alice, body, "retry-1")
    second = await post(client, alice, body, "retry-1")
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.content == first.content
    assert second.headers["location"] == first.headers["location"]
    assert [key["_id"] for key in await list_keys(client, alice)] == [first.json()["_id"]]


async def test_the_same_key_with_another_body_is_a_409_that_names_the_header(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If an Idempotency-Key is reused with a different body, then the answer is a 409 whose
    message names Idempotency-Key, no second key is made, and the first body still replays."""
    body = new_body("laptop")
    first = await post(client, alice, body, "retry-2")
    reused = await post(client, alice, new_body("desktop"), "retry-2")
    body_again = await post(client, alice, body, "retry-2")
    message = assert_error(reused, 409)["message"]
    assert HEADER in message, message
    assert body_again.content == first.content
    assert len(await list_keys(client, alice)) == 1


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256-characters"),
        pytest.param("clé".encode(), id="non-ascii"),
        pytest.param("two words", id="space"),
    ],
)
async def test_an_unusable_idempotency_key_is_a_400_and_creates_nothing(
    client: httpx.AsyncClient, alice: str, value: str | bytes
) -> None:
    """If the Idempotency-Key is empty, over 255 characters, not ASCII or holds a space, then
    the create is a 400 whose message names the header, and no key is made."""
    response = await post(client, alice, new_body(), value)
    assert HEADER in assert_error(response, 400)["message"]
    assert await list_keys(client, alice) == []


async def test_a_255_character_idempotency_key_is_accepted(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If the Idempotency-Key is 255 printable ASCII characters, then it works as a key."""
    body = new_body()
    first = await post(client, alice, body, "~" * 255)
    second = await post(client, alice, body, "~" * 255)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.content == first.content


async def test_without_the_header_a_repeat_is_the_usual_duplicate_409(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If the same create is sent twice without an Idempotency-Key, then the second is the
    duplicate-key 409, as before."""
    body = new_body()
    assert (await post(client, alice, body, None)).status_code == 201
    message = assert_error(await post(client, alice, body, None), 409)["message"]
    assert "already registered" in message, message


async def test_a_corrected_retry_after_a_refusal_is_a_new_request(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If a create with an Idempotency-Key is refused (a DSA key: 400), then the same request
    is refused again, and the corrected request with the same key creates the key."""
    dsa = {"name": "laptop", "publicKey": openssh_line(*hand_built_weak_key("dsa"), "old@host")}
    refused = await post(client, alice, dsa, "retry-3")
    refused_again = await post(client, alice, dsa, "retry-3")
    corrected = await post(client, alice, new_body("laptop"), "retry-3")
    assert "DSA" in assert_error(refused, 400)["message"]
    assert "DSA" in assert_error(refused_again, 400)["message"]
    assert corrected.status_code == 201, corrected.text
    assert [key["name"] for key in await list_keys(client, alice)] == ["laptop"]


async def test_a_repeat_after_the_key_was_deleted_replays_and_does_not_recreate(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If the key a create made is deleted and the create is then repeated, then the repeat
    gets the first answer and the key is not made again."""
    body = new_body()
    first = await post(client, alice, body, "retry-4")
    deleted = await client.delete(first.headers["location"], headers=auth(alice))
    assert deleted.status_code == 204
    again = await post(client, alice, body, "retry-4")
    assert (again.status_code, again.content) == (201, first.content)
    assert await list_keys(client, alice) == []


async def test_idempotency_keys_belong_to_their_owner(
    client: httpx.AsyncClient, alice: str, bob: str
) -> None:
    """If two owners send the same Idempotency-Key with the same body, then each gets a key of
    their own: one owner never receives the other's answer."""
    body = new_body()
    alices = await post(client, alice, body, "shared-key")
    bobs = await post(client, bob, body, "shared-key")
    assert (alices.status_code, bobs.status_code) == (201, 201), bobs.text
    assert bobs.json()["_id"] != alices.json()["_id"]
    assert [key["_id"] for key in await list_keys(client, bob)] == [bobs.json()["_id"]]


async def test_an_answer_under_24_hours_old_is_replayed(
    client: httpx.AsyncClient, app: GpuCloudApp, alice: str
) -> None:
    """If the first answer is 23 h 59 min old, then a repeat still gets it."""
    body = new_body()
    first = await post(client, alice, body, "retry-5")
    await age_stored_answers(app, dt.timedelta(hours=23, minutes=59))
    again = await post(client, alice, body, "retry-5")
    assert (again.status_code, again.content) == (201, first.content)


async def test_an_answer_over_24_hours_old_is_not_replayed(
    client: httpx.AsyncClient, app: GpuCloudApp, alice: str
) -> None:
    """If the first answer is 24 h 1 min old, then a repeat is a new request: the key exists,
    so it is the duplicate 409, not the old 201."""
    body = new_body()
    assert (await post(client, alice, body, "retry-6")).status_code == 201
    await age_stored_answers(app, dt.timedelta(hours=24, minutes=1))
    again = await post(client, alice, body, "retry-6")
    assert "already registered" in assert_error(again, 409)["message"]


async def test_concurrent_repeats_create_one_key_and_all_get_its_answer(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If 8 identical creates with one Idempotency-Key arrive at once, then all 8 are the same
    201 and exactly one key exists."""
    body = new_body()
    responses = await asyncio.gather(*(post(client, alice, body, "burst") for _ in range(8)))
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert len(await list_keys(client, alice)) == 1


async def test_the_same_key_with_another_expiry_is_a_409(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If an Idempotency-Key is reused for the same key and name with another expiresAt,
    then it is a 409 (the expiry is part of the request), and the first answer replays."""
    body = new_body("laptop")
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    first = await post(client, alice, {**body, "expiresAt": soon}, "retry-expiry")
    assert first.status_code == 201, first.text
    reused = await post(client, alice, {**body, "expiresAt": later}, "retry-expiry")
    assert HEADER in assert_error(reused, 409)["message"]
    again = await post(client, alice, {**body, "expiresAt": soon}, "retry-expiry")
    assert again.content == first.content
