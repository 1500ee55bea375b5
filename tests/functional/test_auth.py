"""Authentication and owner isolation on every endpoint (SPEC 2)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gpucloud.api_keys import service as api_keys
from gpucloud.app import GpuCloudApp
from gpucloud.models import metadata
from tests.functional.helpers import (
    INVALID_API_KEY,
    PREFIX,
    SSH_KEY_NOT_FOUND,
    UNKNOWN_API_KEY,
    UNKNOWN_ID,
    UNKNOWN_SECRET,
    assert_error,
    auth,
    create_key,
    list_keys,
)
from tests.support.keygen import GeneratedKey

MakeAPIKey = Callable[..., Awaitable[str]]


@dataclass(frozen=True)
class Endpoint:
    """One operation, with a request that would succeed for the owner of `key_id`."""

    label: str
    method: str
    path: str
    json: dict[str, Any] | None = None

    def url(self, key_id: str) -> str:
        return self.path.format(id=key_id)


ENDPOINTS = (
    Endpoint("create", "POST", PREFIX, {"name": "new", "publicKey": "NEW_KEY"}),
    Endpoint("list", "GET", PREFIX),
    Endpoint("authorized_keys", "GET", f"{PREFIX}/authorized_keys"),
    Endpoint("get one", "GET", f"{PREFIX}/{{id}}"),
    Endpoint("rename", "PATCH", f"{PREFIX}/{{id}}", {"name": "renamed"}),
    Endpoint("makedefault", "PATCH", f"{PREFIX}/{{id}}/makedefault"),
    Endpoint("delete", "DELETE", f"{PREFIX}/{{id}}"),
)
# Endpoints that act on one key, for the isolation tests.
ONE_KEY_ENDPOINTS = tuple(e for e in ENDPOINTS if "{id}" in e.path)

MALFORMED_SECRETS = {
    "missing": None,
    "empty": "",
    "42 characters after gck_": "gck_" + "A" * 42,
    "44 characters after gck_": "gck_" + "A" * 44,
    "wrong prefix": "gcx_" + "A" * 43,
    "upper-case prefix": "GCK_" + "A" * 43,
    "a character outside base64url": "gck_" + "A" * 42 + "+",
    "a Bearer scheme": "Bearer gck_" + "A" * 43,
}


@dataclass
class Situation:
    """alice with one key (`laptop`), and the key a create would add."""

    alice: str
    key_id: str
    new_key: str
    keys: list[dict[str, Any]]


@pytest.fixture
async def situation(
    client: httpx.AsyncClient, alice: str, ed25519_keys: list[GeneratedKey]
) -> Situation:
    created = await create_key(client, alice, "laptop", ed25519_keys[0].public_text)
    return Situation(
        alice=alice,
        key_id=created["_id"],
        new_key=ed25519_keys[1].public_text,
        keys=await list_keys(client, alice),
    )


async def _call(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    situation: Situation,
    secret: str | None,
    key_id: str | None = None,
) -> httpx.Response:
    """Send the endpoint's request with `secret` as x-api-key (no header when None)."""
    headers = {} if secret is None else auth(secret)
    body = None
    if endpoint.json is not None:
        body = {k: situation.new_key if v == "NEW_KEY" else v for k, v in endpoint.json.items()}
    return await client.request(
        endpoint.method,
        endpoint.url(key_id or situation.key_id),
        headers=headers,
        json=body,
    )


async def test_a_missing_empty_or_malformed_api_key_is_a_403_on_every_endpoint(
    client: httpx.AsyncClient, situation: Situation, subtests: pytest.Subtests
) -> None:
    """If x-api-key is missing, empty or not `gck_` + 43 base64url characters, then every endpoint says 403."""
    for label, secret in MALFORMED_SECRETS.items():
        for endpoint in ENDPOINTS:
            with subtests.test(f"{label}, {endpoint.label}"):
                response = await _call(client, endpoint, situation, secret)
                assert_error(response, 403, INVALID_API_KEY)
    assert await list_keys(client, situation.alice) == situation.keys


async def test_a_well_formed_unknown_api_key_is_a_404_on_every_endpoint(
    client: httpx.AsyncClient, situation: Situation, subtests: pytest.Subtests
) -> None:
    """If x-api-key is well formed but matches no key, then every endpoint says 404 API key not found."""
    for endpoint in ENDPOINTS:
        with subtests.test(endpoint.label):
            response = await _call(client, endpoint, situation, UNKNOWN_SECRET)
            assert_error(response, 404, UNKNOWN_API_KEY)
    assert await list_keys(client, situation.alice) == situation.keys


async def test_a_revoked_api_key_is_a_403_on_every_endpoint_at_once(
    client: httpx.AsyncClient,
    app: GpuCloudApp,
    situation: Situation,
    make_api_key: MakeAPIKey,
    subtests: pytest.Subtests,
) -> None:
    """If an API key that just worked is revoked, then its very next request on any endpoint is a 403."""
    assert await list_keys(client, situation.alice) == situation.keys
    async with app.services.database.write() as conn:
        await api_keys.revoke(conn, situation.alice)
    for endpoint in ENDPOINTS:
        with subtests.test(endpoint.label):
            response = await _call(client, endpoint, situation, situation.alice)
            assert_error(response, 403, INVALID_API_KEY)
    # alice's other keys still work, and see her keys untouched.
    assert await list_keys(client, await make_api_key("alice")) == situation.keys


async def test_an_expired_api_key_is_a_403_on_every_endpoint(
    client: httpx.AsyncClient,
    situation: Situation,
    make_api_key: MakeAPIKey,
    subtests: pytest.Subtests,
) -> None:
    """If an API key's lifetime has passed, then every endpoint answers it with a 403."""
    short_lived = await make_api_key("alice", expires_in=dt.timedelta(milliseconds=1))
    await asyncio.sleep(0.02)
    for endpoint in ENDPOINTS:
        with subtests.test(endpoint.label):
            response = await _call(client, endpoint, situation, short_lived)
            assert_error(response, 403, INVALID_API_KEY)
    assert await list_keys(client, situation.alice) == situation.keys


async def test_an_api_key_works_until_it_expires(
    client: httpx.AsyncClient, alice: str, make_api_key: MakeAPIKey
) -> None:
    """If an API key has a lifetime that has not passed, then it authenticates its owner."""
    secret = await make_api_key("alice", expires_in=dt.timedelta(hours=1))
    response = await client.get(PREFIX, headers=auth(secret))
    assert response.status_code == 200, response.text


async def test_every_api_key_of_an_owner_sees_the_same_keys(
    client: httpx.AsyncClient,
    situation: Situation,
    make_api_key: MakeAPIKey,
) -> None:
    """If an owner has two API keys, then both see and change the same SSH keys."""
    second = await make_api_key("alice")
    assert await list_keys(client, second) == situation.keys
    response = await client.delete(f"{PREFIX}/{situation.key_id}", headers=auth(second))
    assert response.status_code == 204, response.text
    assert await list_keys(client, situation.alice) == []


# Authentication comes before anything else in the request.


async def test_a_bad_api_key_with_a_bad_body_gets_the_api_key_error(
    client: httpx.AsyncClient, situation: Situation, subtests: pytest.Subtests
) -> None:
    """If both the API key and the body are bad, then the answer is the API key's 403 or 404."""
    bodies: dict[str, tuple[bytes, str | None]] = {
        "not JSON": (b"{not json", "application/json"),
        "wrong content type": (b"name=x", "text/plain"),
        "no content type": (b'{"name": "x"}', None),
        "invalid name": (b'{"name": "", "publicKey": "x"}', "application/json"),
        "over 64 KiB": (b'{"name": "' + b"x" * 70_000 + b'"}', "application/json"),
    }
    targets = {
        "create": PREFIX,
        "rename": f"{PREFIX}/{situation.key_id}",
    }
    for secret, status, message in (
        ("gck_short", 403, INVALID_API_KEY),
        (None, 403, INVALID_API_KEY),
        (UNKNOWN_SECRET, 404, UNKNOWN_API_KEY),
    ):
        for label, (content, content_type) in bodies.items():
            for endpoint, url in targets.items():
                with subtests.test(f"{endpoint}, {label}", secret=secret):
                    headers = {} if secret is None else auth(secret)
                    if content_type is not None:
                        headers["content-type"] = content_type
                    method = "POST" if endpoint == "create" else "PATCH"
                    response = await client.request(method, url, headers=headers, content=content)
                    assert_error(response, status, message)


async def test_a_bad_api_key_with_a_bad_query_or_id_gets_the_api_key_error(
    client: httpx.AsyncClient, situation: Situation, subtests: pytest.Subtests
) -> None:
    """If the API key is bad and so is the filter or the id, then the answer is the API key's error."""
    requests = {
        "bad fingerprint filter": ("GET", f"{PREFIX}?fingerprint=nonsense"),
        "malformed id": ("GET", f"{PREFIX}/not-an-id"),
        "unknown id": ("DELETE", f"{PREFIX}/{UNKNOWN_ID}"),
        "unknown id, makedefault": ("PATCH", f"{PREFIX}/{UNKNOWN_ID}/makedefault"),
    }
    for label, (method, url) in requests.items():
        with subtests.test(label):
            assert_error(await client.request(method, url), 403, INVALID_API_KEY)
            response = await client.request(method, url, headers=auth(UNKNOWN_SECRET))
            assert_error(response, 404, UNKNOWN_API_KEY)


async def test_the_operator_endpoints_need_no_api_key(
    client: httpx.AsyncClient, subtests: pytest.Subtests
) -> None:
    """If /healthz, /readyz, /metrics, /openapi.json, /docs or /console is asked without a key, then 200."""
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/console"):
        with subtests.test(path):
            response = await client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text[:200])


# Owner isolation


def _without_timestamp_and_path(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("timestamp", "path")}


async def test_another_owners_key_answers_exactly_like_a_key_that_does_not_exist(
    client: httpx.AsyncClient,
    situation: Situation,
    bob: str,
    subtests: pytest.Subtests,
) -> None:
    """If bob gets, renames, makes default or deletes alice's key, then he gets the unknown id's 404."""
    for endpoint in ONE_KEY_ENDPOINTS:
        with subtests.test(endpoint.label):
            theirs = await _call(client, endpoint, situation, bob)
            nobodys = await _call(client, endpoint, situation, bob, key_id=UNKNOWN_ID)
            assert_error(theirs, 404, SSH_KEY_NOT_FOUND)
            assert_error(nobodys, 404, SSH_KEY_NOT_FOUND)
            assert _without_timestamp_and_path(theirs.json()) == _without_timestamp_and_path(
                nobodys.json()
            )
            assert theirs.headers.get("content-length") == nobodys.headers.get("content-length")
    assert await list_keys(client, situation.alice) == situation.keys


async def test_an_owner_lists_only_its_own_keys(
    client: httpx.AsyncClient,
    situation: Situation,
    bob: str,
    ed25519_keys: list[GeneratedKey],
) -> None:
    """If alice and bob each have keys, then each one's list, filters and authorized_keys show only theirs."""
    bobs = await create_key(client, bob, "bob's", ed25519_keys[2].public_text)
    assert await list_keys(client, bob) == [bobs]
    assert await list_keys(client, situation.alice) == situation.keys
    alices = situation.keys[0]
    assert await list_keys(client, bob, fingerprint=alices["fingerprint"]) == []
    assert await list_keys(client, bob, fingerprint=alices["fingerprintMd5"]) == []
    assert await list_keys(client, bob, name="laptop") == []
    response = await client.get(f"{PREFIX}/authorized_keys", headers=auth(bob))
    assert response.text == bobs["publicKey"] + "\n"


async def test_two_owners_may_register_the_same_key_under_the_same_name(
    client: httpx.AsyncClient,
    situation: Situation,
    bob: str,
    ed25519_keys: list[GeneratedKey],
) -> None:
    """If bob registers alice's public key under her key's name, then it is his own, default key."""
    bobs = await create_key(client, bob, "laptop", ed25519_keys[0].public_text)
    alices = situation.keys[0]
    assert bobs["_id"] != alices["_id"]
    assert bobs["fingerprint"] == alices["fingerprint"]
    assert bobs["isDefault"] is True
    assert await list_keys(client, situation.alice) == situation.keys


# The secret stays secret


async def test_the_secret_never_appears_in_a_response_a_log_or_a_metric(
    client: httpx.AsyncClient,
    situation: Situation,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If an API key is used on every endpoint, successfully or not, then no response, log or metric shows it."""
    caplog.set_level(logging.DEBUG)
    secret = situation.alice
    responses: list[httpx.Response] = []
    for endpoint in ENDPOINTS:
        responses.append(await _call(client, endpoint, situation, secret))
        responses.append(await _call(client, endpoint, situation, secret, key_id=UNKNOWN_ID))
        responses.append(await _call(client, endpoint, situation, secret[:-1]))
        responses.append(await _call(client, endpoint, situation, secret + "x"))
    responses.append(
        await client.post(PREFIX, headers={**auth(secret), "content-type": "text/plain"})
    )
    responses.append(await client.get("/metrics"))
    statuses = {response.status_code for response in responses}
    assert {200, 201, 204, 403, 404, 415} <= statuses, statuses
    secret_part = secret[4:]  # the random part, whatever surrounds it
    for response in responses:
        seen = response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
        assert secret_part[:-1] not in seen, (response.request.method, response.request.url)
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert caplog.records, "the requests left no log records to check"
    assert secret_part[:-1] not in logged


async def test_the_database_never_stores_the_secret(
    client: httpx.AsyncClient, app: GpuCloudApp, situation: Situation
) -> None:
    """If an API key is created and used, then no stored row of any table contains its secret."""
    secret_part = situation.alice[4:]
    dumped: list[str] = []
    async with app.services.database.read() as conn:
        for table in metadata.sorted_tables:
            rows = await conn.fetch(select(table))
            dumped.extend(repr(tuple(row)) for row in rows)
            for row in rows:
                for value in row:
                    if isinstance(value, bytes):
                        dumped.append(value.decode("latin-1"))
    assert any("laptop" in row for row in dumped), "the dump missed the ssh_keys table"
    assert not [row for row in dumped if secret_part in row]
