"""The list and authorized_keys carry a strong ETag, and a current If-None-Match gets 304."""

from __future__ import annotations

import httpx
import pytest

from tests.functional.helpers import PREFIX, auth, create_key
from tests.support.keygen import GeneratedKey

AUTHORIZED_KEYS = f"{PREFIX}/authorized_keys"


async def _tag(client: httpx.AsyncClient, secret: str, path: str) -> str:
    response = await client.get(path, headers=auth(secret))
    assert response.status_code == 200, response.text
    tag = response.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"'), f"not a strong tag: {tag}"
    return tag


async def _conditional(
    client: httpx.AsyncClient, secret: str, path: str, if_none_match: str
) -> httpx.Response:
    return await client.get(path, headers={**auth(secret), "If-None-Match": if_none_match})


@pytest.mark.parametrize("path", [PREFIX, AUTHORIZED_KEYS])
async def test_a_current_tag_gets_304_with_no_body_and_the_tag(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey], path: str
) -> None:
    """If a client sends back the ETag it got, in any of the forms HTTP allows, then the
    answer is 304 with no body, the same ETag and the usual headers."""
    await create_key(client, alice, "laptop", ed25519_keys[0].public_line)
    tag = await _tag(client, alice, path)
    assert await _tag(client, alice, path) == tag
    for form in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        response = await _conditional(client, alice, path, form)
        assert response.status_code == 304, form
        assert response.content == b""
        assert response.headers["etag"] == tag
        assert response.headers["x-request-id"]
        assert response.headers["cache-control"] == "no-store"
    response = await _conditional(client, alice, path, '"not-the-tag"')
    assert response.status_code == 200 and response.content


async def test_every_change_to_the_keys_changes_the_tags_of_what_it_changes(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If a key is added, made default, renamed or deleted, then an old tag gets the new
    body (200), for the list always and for authorized_keys when its lines changed; a
    rename leaves authorized_keys (which holds no names) as it was, so its tag stays."""
    first = await create_key(client, alice, "laptop", ed25519_keys[0].public_line)
    list_tag = await _tag(client, alice, PREFIX)
    file_tag = await _tag(client, alice, AUTHORIZED_KEYS)

    second = await create_key(client, alice, "desktop", ed25519_keys[1].public_line)
    changed = await _conditional(client, alice, PREFIX, list_tag)
    assert changed.status_code == 200
    assert [k["name"] for k in changed.json()] == ["laptop", "desktop"]
    changed = await _conditional(client, alice, AUTHORIZED_KEYS, file_tag)
    assert changed.status_code == 200 and changed.text.count("\n") == 2
    list_tag, file_tag = changed_tags = (
        await _tag(client, alice, PREFIX),
        await _tag(client, alice, AUTHORIZED_KEYS),
    )

    await client.patch(f"{PREFIX}/{first['_id']}", headers=auth(alice), json={"name": "renamed"})
    assert (await _conditional(client, alice, PREFIX, list_tag)).status_code == 200
    assert (await _conditional(client, alice, AUTHORIZED_KEYS, file_tag)).status_code == 304
    list_tag = await _tag(client, alice, PREFIX)

    response = await client.patch(f"{PREFIX}/{second['_id']}/makedefault", headers=auth(alice))
    assert response.status_code == 204
    for path, tag in ((PREFIX, list_tag), (AUTHORIZED_KEYS, file_tag)):
        changed = await _conditional(client, alice, path, tag)
        assert changed.status_code == 200, path
    assert (await client.get(AUTHORIZED_KEYS, headers=auth(alice))).text.startswith(
        second["publicKey"]
    )

    response = await client.delete(f"{PREFIX}/{second['_id']}", headers=auth(alice))
    assert response.status_code == 204
    listed = await client.get(PREFIX, headers=auth(alice))
    assert [k["_id"] for k in listed.json()] == [first["_id"]]
    assert listed.headers["etag"] not in changed_tags


async def test_one_owners_tag_says_nothing_about_another_owners_keys(
    client: httpx.AsyncClient, alice: str, bob: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If bob sends alice's tag, then he gets his own keys (200), never a 304 for hers."""
    await create_key(client, alice, "laptop", ed25519_keys[0].public_line)
    await create_key(client, bob, "laptop", ed25519_keys[1].public_line)
    tag = await _tag(client, alice, PREFIX)
    response = await _conditional(client, bob, PREFIX, tag)
    assert response.status_code == 200
    assert response.json()[0]["publicKey"] == ed25519_keys[1].public_line


async def test_an_owner_with_no_keys_has_a_tag_too(client: httpx.AsyncClient, alice: str) -> None:
    """If an owner has no keys, then the empty list and the empty file still carry a tag
    that a repeat can send back for a 304."""
    for path, empty in ((PREFIX, b"[]"), (AUTHORIZED_KEYS, b"")):
        response = await client.get(path, headers=auth(alice))
        assert response.content == empty
        again = await _conditional(client, alice, path, response.headers["etag"])
        assert again.status_code == 304
