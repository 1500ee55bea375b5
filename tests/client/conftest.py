"""Fixtures of the client tests: a client on a scripted transport, and a clean environment."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpucloud.client import Client

API_KEY = "gck_" + "k" * 43
BASE_URL = "http://api.test"
KEY_DTO = {
    "_id": "6650f1c2a1b2c3d4e5f60718",
    "name": "laptop",
    "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvAV0mvuPx5XbnLrE5DHV7RWHA6dObnZxOv4kJCqTwF ada@laptop",
    "isDefault": True,
    "createdAt": "2024-05-01T12:00:00.000Z",
    "updatedAt": "2024-05-01T12:00:00.123Z",
    "fingerprint": "SHA256:abc",
    "fingerprintMd5": "MD5:aa:bb",
    "keyType": "ssh-ed25519",
    "keyBits": 256,
}


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """An error in the API's shape (SPEC 3)."""
    return {
        "statusCode": status,
        "timestamp": "2024-05-01T12:00:00.000Z",
        "path": "/gpu-cloud/ssh-keys",
        "message": message,
        **extra,
    }


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """A JSON answer (or an empty one when `body` is None)."""
    content = b"" if body is None else json.dumps(body).encode()
    all_headers = {"content-type": "application/json"} if body is not None else {}
    return httpx.Response(status, content=content, headers={**all_headers, **(headers or {})})


class Script:
    """A transport that answers with the given responses, in order, and records requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


MakeClient = Callable[..., Client]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No GPUCLOUD_/SESTERCE_ variables, and an empty home directory; returns the home."""
    for name in (
        "GPUCLOUD_API_KEY",
        "GPUCLOUD_API_URL",
        "GPUCLOUD_PROFILE",
        "SESTERCE_CLOUD_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def scripted(clean_env: Path) -> Iterator[Callable[..., tuple[Client, Script]]]:
    """Factory: `scripted(*answers, **client_options)` is a Client on a Script transport."""
    clients: list[Client] = []

    def make(*answers: httpx.Response | Exception, **options: Any) -> tuple[Client, Script]:
        script = Script(*answers)
        options.setdefault("api_key", API_KEY)
        options.setdefault("base_url", BASE_URL)
        client = Client(transport=httpx.MockTransport(script), **options)
        clients.append(client)
        return client, script

    yield make
    for client in clients:
        client.close()
