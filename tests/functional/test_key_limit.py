"""The per-owner limit of SSH keys (SPEC 4), with the limit set to 3 for speed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gpucloud.config import Settings
from tests.functional.helpers import PREFIX, assert_error, auth, create_key, list_keys
from tests.support.keygen import GeneratedKey

LIMIT = 3


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The test settings, with GPUCLOUD_MAX_KEYS_PER_OWNER=3 (and no rate limits)."""
    return Settings(
        database_url=database_url,
        log_format="text",
        max_keys_per_owner=LIMIT,
        rate_limit_enabled=False,
    )


@pytest.fixture
async def full(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> list[dict[str, Any]]:
    """alice's keys once she has reached the limit: key0, key1, key2."""
    for i in range(LIMIT):
        await create_key(client, alice, f"key{i}", ed25519_keys[i].public_text)
    keys = await list_keys(client, alice)
    assert len(keys) == LIMIT
    return keys


def _is_limit_error(error: dict[str, Any]) -> bool:
    return str(LIMIT) in error["message"] and "limit" in error["message"]


async def test_a_create_over_the_limit_is_a_400_that_names_the_limit(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    full: list[dict[str, Any]],
) -> None:
    """If an owner has as many keys as the limit, then the next create is a 400 naming the limit."""
    response = await client.post(
        PREFIX,
        headers=auth(alice),
        json={"name": "one more", "publicKey": ed25519_keys[3].public_text},
    )
    error = assert_error(response, 400)
    assert _is_limit_error(error), error
    assert await list_keys(client, alice) == full


async def test_the_limit_is_reported_before_a_duplicate_key_or_name(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    full: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If the limit is reached and the key or name is a duplicate, then the answer is the limit's 400."""
    cases = {
        "duplicate key": {"name": "other", "publicKey": ed25519_keys[0].public_text},
        "duplicate name": {"name": "key0", "publicKey": ed25519_keys[3].public_text},
        "both": {"name": "key0", "publicKey": ed25519_keys[0].public_text},
    }
    for label, body in cases.items():
        with subtests.test(label):
            error = assert_error(await client.post(PREFIX, headers=auth(alice), json=body), 400)
            assert _is_limit_error(error), error


async def test_an_invalid_name_or_key_is_reported_before_the_limit(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    full: list[dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """If the limit is reached and the name or key is invalid, then the 400 is about name or key."""
    cases = {
        "invalid name": ({"name": "", "publicKey": ed25519_keys[3].public_text}, "name"),
        "invalid key": ({"name": "other", "publicKey": "ssh-ed25519 AAAA"}, "publicKey"),
    }
    for label, (body, field) in cases.items():
        with subtests.test(label):
            error = assert_error(await client.post(PREFIX, headers=auth(alice), json=body), 400)
            assert error["message"].startswith(field), error
            assert not _is_limit_error(error), error


async def test_the_limit_is_per_owner(
    client: httpx.AsyncClient,
    bob: str,
    ed25519_keys: list[GeneratedKey],
    full: list[dict[str, Any]],
) -> None:
    """If alice has reached the limit, then bob can still create a key."""
    await create_key(client, bob, "bob's", ed25519_keys[3].public_text)


async def test_deleting_a_key_makes_room_for_another(
    client: httpx.AsyncClient,
    alice: str,
    ed25519_keys: list[GeneratedKey],
    full: list[dict[str, Any]],
) -> None:
    """If an owner at the limit deletes a key, then one more create succeeds."""
    response = await client.delete(f"{PREFIX}/{full[1]['_id']}", headers=auth(alice))
    assert response.status_code == 204, response.text
    await create_key(client, alice, "replacement", ed25519_keys[3].public_text)
    assert len(await list_keys(client, alice)) == LIMIT
