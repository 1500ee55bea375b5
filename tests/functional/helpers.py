"""Small helpers shared by the functional tests: requests, and the shapes they check."""

from __future__ import annotations

import re
from typing import Any

import httpx

PREFIX = "/gpu-cloud/ssh-keys"
# JavaScript's toISOString: UTC, milliseconds, a literal Z.
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
ERROR_REQUIRED = frozenset({"statusCode", "timestamp", "path", "message"})
ERROR_OPTIONAL = frozenset({"error", "details"})
DTO_FIELDS = frozenset(
    {
        "_id",
        "name",
        "publicKey",
        "isDefault",
        "createdAt",
        "updatedAt",
        "fingerprint",
        "fingerprintMd5",
        "keyType",
        "keyBits",
        "expiresAt",
        "lastUsedAt",
    }
)
INVALID_API_KEY = "API key invalid"
UNKNOWN_API_KEY = "API key not found"
SSH_KEY_NOT_FOUND = "SSH key not found"
# Well-formed, and never issued: 43 characters of the base64url alphabet.
UNKNOWN_SECRET = "gck_" + "A" * 43
UNKNOWN_ID = "0" * 24


def auth(secret: str) -> dict[str, str]:
    """The header that authenticates as the owner of `secret`."""
    return {"x-api-key": secret}


async def create_key(
    client: httpx.AsyncClient, secret: str, name: str, public_key: str
) -> dict[str, Any]:
    """Create a key, assert the 201, and return its SSHKeyDto."""
    response = await client.post(
        PREFIX, headers=auth(secret), json={"name": name, "publicKey": public_key}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def list_keys(client: httpx.AsyncClient, secret: str, **params: str) -> list[dict[str, Any]]:
    """The owner's keys as GET /gpu-cloud/ssh-keys returns them (asserting the 200)."""
    response = await client.get(PREFIX, headers=auth(secret), params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def get_key(client: httpx.AsyncClient, secret: str, key_id: str) -> dict[str, Any]:
    """One key as GET /gpu-cloud/ssh-keys/{id} returns it (asserting the 200)."""
    response = await client.get(f"{PREFIX}/{key_id}", headers=auth(secret))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def defaults(keys: list[dict[str, Any]]) -> list[str]:
    """The names of the keys marked default."""
    return [key["name"] for key in keys if key["isDefault"]]


def assert_error(
    response: httpx.Response,
    status: int,
    message: str | None = None,
    *,
    path: str | None = None,
) -> dict[str, Any]:
    """Assert `response` is an error of SPEC 3's shape with this status; return its body.

    `message`, when given, must be the whole message; `path`, when given, the `path`.
    """
    assert response.status_code == status, (response.status_code, response.text)
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() == "application/json", content_type
    body: dict[str, Any] = response.json()
    assert isinstance(body, dict), body
    keys = set(body)
    assert keys >= ERROR_REQUIRED, f"missing {ERROR_REQUIRED - keys} in {body}"
    assert keys <= ERROR_REQUIRED | ERROR_OPTIONAL, f"unexpected {keys - ERROR_REQUIRED} in {body}"
    assert body["statusCode"] == status, body
    assert isinstance(body["timestamp"], str), body
    assert TIMESTAMP.fullmatch(body["timestamp"]), body["timestamp"]
    assert isinstance(body["message"], str), body
    assert body["message"].strip(), body
    if "error" in body:
        assert isinstance(body["error"], str), body
    if "details" in body:
        assert isinstance(body["details"], list), body
        for detail in body["details"]:
            assert set(detail) == {"field", "message"}, detail
    expected_path = path if path is not None else response.request.url.path
    assert body["path"] == expected_path, body
    if message is not None:
        assert body["message"] == message, body
    return body
