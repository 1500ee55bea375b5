"""The ceiling: the fastest answers the same server stack can give.

A bare Starlette app, served by the same server entry point and options as gpucloud
(bench/serve.py), that answers each benchmarked route with a constant, pre-serialised
response of the same shape as gpucloud's:

- `GET /gpu-cloud/ssh-keys`: a JSON array of 10 keys;
- `GET /gpu-cloud/ssh-keys/authorized_keys`: a 10-line `authorized_keys` file
  (`text/plain; charset=utf-8`, one `ssh-ed25519 …` line per key, as gpucloud writes it);
- `POST /gpu-cloud/ssh-keys`: reads the body and parses it as JSON with orjson (as any
  real endpoint must), then answers one key, 201, with a Location;
- `PATCH /gpu-cloud/ssh-keys/{id}/makedefault`: 204.

No authentication, no database, no middleware, no ETag. gpucloud's figures are judged
as a share of these.
"""

from __future__ import annotations

import base64
import hashlib
import json

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PREFIX = "/gpu-cloud/ssh-keys"
KEYS = 10


def _blob(index: int) -> bytes:
    """An Ed25519 public key in the SSH wire format (its 32 bytes derived from `index`)."""
    material = hashlib.sha256(f"ceiling {index}".encode()).digest()
    return b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + material


def _public_key(index: int) -> str:
    """The key as gpucloud stores and answers it: `ssh-ed25519 BASE64`, no comment."""
    return "ssh-ed25519 " + base64.b64encode(_blob(index)).decode()


def _key(index: int) -> dict[str, object]:
    """One SSHKeyDto with realistic values (the sizes match gpucloud's answers)."""
    blob = _blob(index)
    md5 = hashlib.md5(blob, usedforsecurity=False).digest()
    sha = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return {
        "_id": hashlib.sha256(blob).hexdigest()[:24],
        "name": f"key {index + 1}",
        "publicKey": _public_key(index),
        "isDefault": index == 0,
        "createdAt": "2026-11-27T10:00:00.000Z",
        "updatedAt": "2026-11-27T10:00:00.000Z",
        "fingerprint": f"SHA256:{sha}",
        "fingerprintMd5": "MD5:" + ":".join(f"{b:02x}" for b in md5),
        "keyType": "ssh-ed25519",
        "keyBits": 256,
    }


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


LIST_BODY = _dumps([_key(i) for i in range(KEYS)])
AUTHORIZED_KEYS_BODY = "".join(f"{_public_key(i)}\n" for i in range(KEYS)).encode()
TEXT = "text/plain; charset=utf-8"
CREATED = _key(KEYS)
CREATED_BODY = _dumps(CREATED)
CREATED_HEADERS = {"Location": f"{PREFIX}/{CREATED['_id']}"}


async def list_keys(_request: Request) -> Response:
    return Response(LIST_BODY, media_type="application/json")


async def authorized_keys(_request: Request) -> Response:
    return Response(AUTHORIZED_KEYS_BODY, media_type=TEXT)


async def create_key(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(
        CREATED_BODY, status_code=201, media_type="application/json", headers=CREATED_HEADERS
    )


async def make_default(_request: Request) -> Response:
    return Response(status_code=204)


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app() -> Starlette:
    """Factory for bench/serve.py (`python -m bench.serve bench.ceiling:create_app`)."""
    return Starlette(
        routes=[
            Route(PREFIX, list_keys, methods=["GET"]),
            Route(PREFIX, create_key, methods=["POST"]),
            Route(PREFIX + "/authorized_keys", authorized_keys, methods=["GET"]),
            Route(PREFIX + "/{id}/makedefault", make_default, methods=["PATCH"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
