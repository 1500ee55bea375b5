"""Scoped API keys (SPEC 8): what an `authorized-keys` key may do, and what it may not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.functional.helpers import (
    INVALID_API_KEY,
    PREFIX,
    assert_error,
    auth,
    create_key,
    list_keys,
)
from tests.functional.test_auth import ENDPOINTS, Situation, _call, situation  # noqa: F401
from tests.support.keygen import GeneratedKey

MakeAPIKey = Callable[..., Awaitable[str]]
AUTHORIZED_KEYS = f"{PREFIX}/authorized_keys"
LACKS_SSH_KEYS = (
    "This API key lacks the scope ssh-keys; it has authorized-keys. "
    "Use a key created with `gpucloud api-keys create --scope ssh-keys`"
)


async def test_an_authorized_keys_key_reads_the_file_and_nothing_else(
    client: httpx.AsyncClient,
    situation: Situation,  # noqa: F811
    make_api_key: MakeAPIKey,
    subtests: pytest.Subtests,
) -> None:
    """If an API key has only the scope authorized-keys, then it reads its owner's
    authorized_keys file, and every other endpoint answers 403 naming the scope ssh-keys
    (not `API key invalid`), changing nothing."""
    instance = await make_api_key("alice", scopes=("authorized-keys",))
    response = await client.get(AUTHORIZED_KEYS, headers=auth(instance))
    assert response.status_code == 200, response.text
    assert response.text == f"{situation.keys[0]['publicKey']}\n"
    for endpoint in ENDPOINTS:
        if endpoint.label == "authorized_keys":
            continue
        with subtests.test(endpoint.label):
            answer = await _call(client, endpoint, situation, instance)
            body = assert_error(answer, 403, LACKS_SSH_KEYS)
            assert body["message"] != INVALID_API_KEY
    assert await list_keys(client, situation.alice) == situation.keys


async def test_the_scope_is_checked_before_the_body_is_read(
    client: httpx.AsyncClient, make_api_key: MakeAPIKey
) -> None:
    """If an authorized-keys key sends a create whose body is not JSON, too big or of
    the wrong type, then the answer is the 403 of its scope, not the body's 400/413/415."""
    instance = await make_api_key("alice", scopes=("authorized-keys",))
    for content, content_type in (
        (b"{not json", "application/json"),
        (b"x" * 70_000, "application/json"),
        (b"name=x", "application/x-www-form-urlencoded"),
    ):
        response = await client.post(
            PREFIX, headers={**auth(instance), "content-type": content_type}, content=content
        )
        assert_error(response, 403, LACKS_SSH_KEYS)


async def test_an_ssh_keys_key_reads_the_file_too(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> None:
    """If an API key has the default scope ssh-keys, then it also reads authorized_keys
    (ssh-keys is everything)."""
    await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    response = await client.get(AUTHORIZED_KEYS, headers=auth(alice))
    assert response.status_code == 200, response.text
    assert response.text == f"{ed25519_keys[0].public_text.strip()}\n"


async def test_a_key_with_both_scopes_does_everything(
    client: httpx.AsyncClient, make_api_key: MakeAPIKey, ed25519_keys: list[GeneratedKey]
) -> None:
    """If an API key has both scopes, then it creates keys and reads the file."""
    both = await make_api_key("carol", scopes=("ssh-keys", "authorized-keys"))
    await create_key(client, both, "laptop", ed25519_keys[0].public_text)
    response = await client.get(AUTHORIZED_KEYS, headers=auth(both))
    assert response.text == f"{ed25519_keys[0].public_text.strip()}\n"


async def test_a_bad_key_is_still_api_key_invalid_on_the_file(
    client: httpx.AsyncClient,
) -> None:
    """If a malformed API key asks for authorized_keys, then the answer is the 403 `API key
    invalid`, not a scope message."""
    response = await client.get(AUTHORIZED_KEYS, headers=auth("gck_short"))
    assert_error(response, 403, INVALID_API_KEY)
