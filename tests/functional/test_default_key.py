"""The default key and `updatedAt` (SPEC 5), and the listing order (SPEC 1)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.functional.helpers import PREFIX, auth, create_key, defaults, list_keys
from tests.support.keygen import GeneratedKey

# Timestamps have millisecond precision: waiting this long between steps makes any
# change of `updatedAt`, and the creation order, visible.
TICK = 0.003


async def _make_default(client: httpx.AsyncClient, secret: str, key_id: str) -> None:
    await asyncio.sleep(TICK)
    response = await client.patch(f"{PREFIX}/{key_id}/makedefault", headers=auth(secret))
    assert response.status_code == 204, response.text
    assert response.content == b""


async def _delete(client: httpx.AsyncClient, secret: str, key_id: str) -> None:
    await asyncio.sleep(TICK)
    response = await client.delete(f"{PREFIX}/{key_id}", headers=auth(secret))
    assert response.status_code == 204, response.text
    assert response.content == b""


async def _rename(client: httpx.AsyncClient, secret: str, key_id: str, name: str) -> dict[str, Any]:
    await asyncio.sleep(TICK)
    response = await client.patch(f"{PREFIX}/{key_id}", headers=auth(secret), json={"name": name})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _by_name(keys: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key["name"]: key for key in keys}


def _changed(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> set[str]:
    """Names of the keys whose updatedAt differs between two listings."""
    old, new = _by_name(before), _by_name(after)
    return {
        name for name in new if name in old and new[name]["updatedAt"] != old[name]["updatedAt"]
    }


@pytest.fixture
async def abc(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> list[dict[str, Any]]:
    """alice's keys a, b, c, created in that order, a milliseconds apart; `a` is the default."""
    for name, key in zip("abc", ed25519_keys, strict=False):
        await create_key(client, alice, name, key.public_text)
        await asyncio.sleep(TICK)
    return await list_keys(client, alice)


async def test_keys_are_listed_oldest_first(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If keys are created one after another, then the list shows them oldest first."""
    names = ["zulu", "alpha", "mike", "bravo", "yankee"]
    for name, key in zip(names, ed25519_keys, strict=False):
        await create_key(client, alice, name, key.public_text)
        await asyncio.sleep(TICK)
    keys = await list_keys(client, alice)
    assert [key["name"] for key in keys] == names
    assert [key["createdAt"] for key in keys] == sorted(key["createdAt"] for key in keys)


async def test_keys_created_in_quick_succession_are_listed_by_creation_time_then_id(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If keys are created faster than the clock ticks, then the list is ordered by createdAt, then _id."""
    await asyncio.gather(
        *(
            client.post(
                PREFIX, headers=auth(alice), json={"name": f"k{i}", "publicKey": key.public_text}
            )
            for i, key in enumerate(ed25519_keys)
        )
    )
    keys = await list_keys(client, alice)
    assert len(keys) == len(ed25519_keys)
    order = [(key["createdAt"], key["_id"]) for key in keys]
    assert order == sorted(order)


async def test_only_the_first_key_is_the_default(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If an owner creates three keys, then the first one is the only default."""
    assert [key["name"] for key in abc] == ["a", "b", "c"]
    assert defaults(abc) == ["a"]


async def test_makedefault_moves_the_default_and_touches_only_the_two_keys_involved(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If b is made default, then b is the only default and only a's and b's updatedAt change."""
    await _make_default(client, alice, abc[1]["_id"])
    after = await list_keys(client, alice)
    assert defaults(after) == ["b"]
    assert _changed(abc, after) == {"a", "b"}
    assert [key["createdAt"] for key in after] == [key["createdAt"] for key in abc]
    assert [key["name"] for key in after] == ["a", "b", "c"]


async def test_makedefault_on_the_default_key_is_a_204_that_changes_nothing(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    """If makedefault is called on the key that already is the default, then nothing changes."""
    with subtests.test("the first key, default since its creation"):
        await _make_default(client, alice, abc[0]["_id"])
        assert await list_keys(client, alice) == abc
    with subtests.test("a key made default just before"):
        await _make_default(client, alice, abc[2]["_id"])
        before = await list_keys(client, alice)
        await _make_default(client, alice, abc[2]["_id"])
        assert await list_keys(client, alice) == before


async def test_deleting_the_default_makes_the_newest_remaining_key_the_default(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If the default a is deleted, then c, the most recently created, becomes default (not b)."""
    await _delete(client, alice, abc[0]["_id"])
    after = await list_keys(client, alice)
    assert [key["name"] for key in after] == ["b", "c"]
    assert defaults(after) == ["c"]
    assert _changed(abc, after) == {"c"}


async def test_the_successor_is_the_newest_key_not_the_previous_default(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If b was default before a and a is deleted, then c, the newest key, becomes default."""
    await _make_default(client, alice, abc[1]["_id"])
    await _make_default(client, alice, abc[0]["_id"])
    await _delete(client, alice, abc[0]["_id"])
    assert defaults(await list_keys(client, alice)) == ["c"]


async def test_deleting_the_newest_default_makes_the_next_newest_the_default(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If c is the default and is deleted, then b, now the newest, becomes default."""
    await _make_default(client, alice, abc[2]["_id"])
    await _delete(client, alice, abc[2]["_id"])
    assert defaults(await list_keys(client, alice)) == ["b"]


async def test_deleting_a_key_that_is_not_the_default_changes_no_other_key(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If b, not the default, is deleted, then a stays default and no updatedAt changes."""
    await _delete(client, alice, abc[1]["_id"])
    after = await list_keys(client, alice)
    assert after == [abc[0], abc[2]]


async def test_deleting_every_key_one_by_one_keeps_exactly_one_default_until_none_is_left(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If the keys are deleted one by one, then each step leaves exactly one default, then an empty list."""
    for key in abc:
        await _delete(client, alice, key["_id"])
        remaining = await list_keys(client, alice)
        assert len(defaults(remaining)) == (1 if remaining else 0), remaining
    assert await list_keys(client, alice) == []


async def test_the_first_key_after_deleting_them_all_is_the_default_again(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If an owner deletes its only key and creates another, then the new one is the default."""
    first = await create_key(client, alice, "first", ed25519_keys[0].public_text)
    await _delete(client, alice, first["_id"])
    assert await list_keys(client, alice) == []
    again = await create_key(client, alice, "again", ed25519_keys[0].public_text)
    assert again["isDefault"] is True


async def test_a_deleted_key_is_gone(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If a key is deleted, then getting, deleting or making it default again is a 404."""
    key_id = abc[1]["_id"]
    await _delete(client, alice, key_id)
    for method, url in (
        ("GET", f"{PREFIX}/{key_id}"),
        ("DELETE", f"{PREFIX}/{key_id}"),
        ("PATCH", f"{PREFIX}/{key_id}/makedefault"),
    ):
        response = await client.request(method, url, headers=auth(alice))
        assert response.status_code == 404, (method, response.text)


async def test_renaming_a_key_changes_only_its_name_and_updated_at(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If b is renamed, then only b's name and updatedAt change, in the answer and the list."""
    renamed = await _rename(client, alice, abc[1]["_id"], "bee")
    after = await list_keys(client, alice)
    assert renamed == after[1]
    assert renamed["updatedAt"] > abc[1]["updatedAt"]
    expected = {**abc[1], "name": "bee", "updatedAt": renamed["updatedAt"]}
    assert after == [abc[0], expected, abc[2]]


async def test_renaming_a_key_to_its_own_name_changes_nothing(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]], subtests: pytest.Subtests
) -> None:
    """If b is renamed to b (even padded with spaces), then the answer is b as it was, unchanged."""
    for name in ("b", "  b \t"):
        with subtests.test(name=name):
            renamed = await _rename(client, alice, abc[1]["_id"], name)
            assert renamed == abc[1]
            assert await list_keys(client, alice) == abc


# The invariant under concurrent requests (a light check; tests/system goes further).


async def test_concurrent_makedefaults_leave_exactly_one_default(
    client: httpx.AsyncClient, alice: str, abc: list[dict[str, Any]]
) -> None:
    """If makedefault is called on every key at once, many times, then exactly one key is default."""
    for _ in range(3):
        responses = await asyncio.gather(
            *(
                client.patch(f"{PREFIX}/{key['_id']}/makedefault", headers=auth(alice))
                for key in abc * 2
            )
        )
        assert [r.status_code for r in responses] == [204] * len(responses)
        assert len(defaults(await list_keys(client, alice))) == 1


async def test_concurrent_first_creates_make_exactly_one_default(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If an owner with no key creates several keys at once, then exactly one of them is default."""
    responses = await asyncio.gather(
        *(
            client.post(
                PREFIX, headers=auth(alice), json={"name": f"k{i}", "publicKey": key.public_text}
            )
            for i, key in enumerate(ed25519_keys[:6])
        )
    )
    assert [r.status_code for r in responses] == [201] * len(responses)
    keys = await list_keys(client, alice)
    assert len(keys) == 6
    assert len(defaults(keys)) == 1
    assert sum(r.json()["isDefault"] for r in responses) == 1


async def test_concurrent_deletes_leave_exactly_one_default(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If the default and other keys are deleted at once, then one of the remaining keys is default."""
    created = [
        await create_key(client, alice, f"k{i}", key.public_text)
        for i, key in enumerate(ed25519_keys[:6])
    ]
    doomed = created[:4]
    responses = await asyncio.gather(
        *(client.delete(f"{PREFIX}/{key['_id']}", headers=auth(alice)) for key in doomed)
    )
    assert [r.status_code for r in responses] == [204] * len(doomed)
    keys = await list_keys(client, alice)
    assert sorted(key["name"] for key in keys) == ["k4", "k5"]
    assert len(defaults(keys)) == 1
