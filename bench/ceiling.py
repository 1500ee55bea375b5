"""The ceiling: the fastest answers the same server stack can give.

A bare Starlette app, served by the same uvicorn command line as gpucloud, that answers
each benchmarked route with a constant, pre-serialised response of the same shape as
gpucloud's: a JSON array of 10 keys for the list, one key (201, with Location) for a
create, 204 for makedefault. No authentication, no database, no middleware; a create
reads its body, as any real endpoint must. gpucloud's figures are judged as a share of
these.
"""

from __future__ import annotations

import base64
import hashlib
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PREFIX = "/gpu-cloud/ssh-keys"


def _key(index: int) -> dict[str, object]:
    """One SSHKeyDto with realistic values (the sizes match gpucloud's answers)."""
    material = hashlib.sha256(f"ceiling {index}".encode()).digest()
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + material
    md5 = hashlib.md5(blob, usedforsecurity=False).digest()
    sha = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return {
        "_id": hashlib.sha256(blob).hexdigest()[:24],
        "name": f"key {index + 1}",
        "publicKey": "ssh-ed25519 " + base64.b64encode(blob).decode(),
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


LIST_BODY = _dumps([_key(i) for i in range(10)])
CREATED = _key(10)
CREATED_BODY = _dumps(CREATED)
CREATED_HEADERS = {"Location": f"{PREFIX}/{CREATED['_id']}"}


async def list_keys(_request: Request) -> Response:
    return Response(LIST_BODY, media_type="application/json")


async def create_key(request: Request) -> Response:
    await request.body()
    return Response(
        CREATED_BODY, status_code=201, media_type="application/json", headers=CREATED_HEADERS
    )


async def make_default(_request: Request) -> Response:
    return Response(status_code=204)


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app() -> Starlette:
    """Factory for `uvicorn --factory bench.ceiling:create_app`."""
    return Starlette(
        routes=[
            Route(PREFIX, list_keys, methods=["GET"]),
            Route(PREFIX, create_key, methods=["POST"]),
            Route(PREFIX + "/{id}/makedefault", make_default, methods=["PATCH"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
