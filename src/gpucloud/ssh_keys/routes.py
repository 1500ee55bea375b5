"""HTTP routes of the SSH-key resource: authenticate, parse, call one service, answer.

Handlers take only the request and read the API key, path and query themselves: a
FastAPI dependency or declared parameter costs tens of microseconds per request in
validation machinery (docs/decisions.md D21), more than the database work of a list.
The OpenAPI document still describes every parameter (`openapi_extra`), and the body
is read after authentication anyway (D3).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from gpucloud.config import Settings
from gpucloud.db import Database
from gpucloud.http.auth import API_KEY_DESCRIPTION, API_KEY_HEADER, authenticate_request
from gpucloud.http.body import read_model
from gpucloud.http.schemas import ErrorDto
from gpucloud.idempotency import service as idempotency
from gpucloud.ssh_keys import service
from gpucloud.ssh_keys.schemas import CreateSSHKeyDto, RenameSSHKeyDto, SSHKeyDto, to_wire

PREFIX = "/gpu-cloud/ssh-keys"
TAG = "GPUCloudSSHKeys"

_ERRORS = {
    400: "Invalid request (body, name, key or filter): the message says what to change",
    403: "API key invalid",
    404: "API key not found, or SSH key not found",
    409: "The same public key or name is already registered",
    413: "Request body over 64 KiB",
    415: "Body not sent as application/json",
    408: "The request body did not arrive in time",
    429: "Rate limit exceeded; see Retry-After",
    503: "The database is unavailable; retry after Retry-After seconds",
}

_API_KEY_PARAMETER = {
    "name": API_KEY_HEADER,
    "in": "header",
    "description": API_KEY_DESCRIPTION,
    "required": True,
    "schema": {"type": "string"},
}
_ID_PARAMETER = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_IDEMPOTENCY_PARAMETER = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Makes retries safe: a repeat with the same key and body within 24 hours "
    "gets the first answer instead of a second key or a 409",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_FILTER_PARAMETERS = [
    {
        "name": "fingerprint",
        "in": "query",
        "required": False,
        "description": "Only the key with this SHA256:… or MD5:… fingerprint",
        "schema": {"type": "string"},
    },
    {
        "name": "name",
        "in": "query",
        "required": False,
        "description": "Only the key with exactly this name",
        "schema": {"type": "string"},
    },
]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    # Every operation can meet an unavailable database (503); those with a body can also
    # time out receiving it (408).
    extra = (408, 503) if 413 in statuses else (503,)
    return {s: {"model": ErrorDto, "description": _ERRORS[s]} for s in (*statuses, *extra)}


def _documented(*parameters: dict[str, Any], body: type[Any] | None = None) -> dict[str, Any]:
    """openapi_extra for a handler that reads its parameters (and body) by hand."""
    extra: dict[str, Any] = {"parameters": [_API_KEY_PARAMETER, *parameters]}
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}
            },
        }
    return extra


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # The wire dicts are built by to_wire from stored rows: validating them again
    # through a response model would only repeat that work on every request.
    return Response(
        orjson.dumps(content), status_code=status, media_type="application/json", headers=headers
    )


def _send(answer: idempotency.StoredAnswer) -> Response:
    headers = {"Location": answer.location} if answer.location else None
    return Response(
        answer.body, status_code=answer.status, media_type="application/json", headers=headers
    )


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _key_id(request: Request) -> str:
    key_id: str = request.path_params["id"]
    return key_id


router = APIRouter(prefix=PREFIX, tags=[TAG])


@router.post(
    "",
    operation_id="GPUCloudSSHKeysController_create",
    summary="Create a SSH Key",
    status_code=201,
    response_model=SSHKeyDto,
    responses={
        201: {"description": "Return the created ssh key"},
        **_errors(400, 403, 404, 409, 413, 415, 429),
    },
    openapi_extra=_documented(_IDEMPOTENCY_PARAMETER, body=CreateSSHKeyDto),
)
async def create_ssh_key(request: Request) -> Response:
    actor = await authenticate_request(request)
    settings = _settings(request)
    body = await read_model(request, CreateSSHKeyDto)
    new = service.prepare(body.name, body.publicKey)
    retry = idempotency.from_header(
        request.headers.get(idempotency.HEADER), {"name": body.name, "publicKey": body.publicKey}
    )
    async with _database(request).write() as conn:
        if retry is not None:
            stored = await idempotency.replay(conn, actor.owner_id, retry)
            if stored is not None:
                return _send(stored)
        record = await service.create(conn, actor, new, max_keys=settings.max_keys_per_owner)
        answer = idempotency.StoredAnswer(
            status=201, body=orjson.dumps(to_wire(record)), location=f"{PREFIX}/{record.id}"
        )
        if retry is not None:
            await idempotency.remember(conn, actor.owner_id, retry, answer)
    return _send(answer)


@router.get(
    "",
    operation_id="GPUCloudSSHKeysController_getUserSSHKeys",
    summary="Retrieve the list of SSH Keys created",
    response_model=list[SSHKeyDto],
    responses={
        200: {"description": "Returns the list of user ssh keys"},
        **_errors(400, 403, 404, 429),
    },
    openapi_extra=_documented(*_FILTER_PARAMETERS),
)
async def list_ssh_keys(request: Request) -> Response:
    actor = await authenticate_request(request)
    query = request.query_params
    async with _database(request).read() as conn:
        records = await service.list_keys(
            conn, actor.owner_id, fingerprint=query.get("fingerprint"), name=query.get("name")
        )
    return _json([to_wire(r) for r in records])


@router.get(
    "/authorized_keys",
    operation_id="GPUCloudSSHKeysController_authorizedKeys",
    summary="Your keys as an authorized_keys file (default first)",
    response_class=Response,
    responses={
        200: {
            "description": "One public key a line, default key first",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **_errors(403, 404, 429),
    },
    openapi_extra=_documented(),
)
async def authorized_keys(request: Request) -> Response:
    actor = await authenticate_request(request)
    async with _database(request).read() as conn:
        lines = await service.authorized_keys(conn, actor.owner_id)
    return Response("".join(f"{line}\n" for line in lines), media_type="text/plain")


@router.get(
    "/{id}",
    operation_id="GPUCloudSSHKeysController_getOne",
    summary="Retrieve one SSH Key",
    response_model=SSHKeyDto,
    responses={200: {"description": "The SSH key"}, **_errors(403, 404, 429)},
    openapi_extra=_documented(_ID_PARAMETER),
)
async def get_ssh_key(request: Request) -> Response:
    actor = await authenticate_request(request)
    async with _database(request).read() as conn:
        record = await service.get(conn, actor.owner_id, _key_id(request))
    return _json(to_wire(record))


@router.patch(
    "/{id}",
    operation_id="GPUCloudSSHKeysController_rename",
    summary="Rename a SSH Key",
    response_model=SSHKeyDto,
    responses={
        200: {"description": "The renamed SSH key"},
        **_errors(400, 403, 404, 409, 413, 415, 429),
    },
    openapi_extra=_documented(_ID_PARAMETER, body=RenameSSHKeyDto),
)
async def rename_ssh_key(request: Request) -> Response:
    actor = await authenticate_request(request)
    body = await read_model(request, RenameSSHKeyDto)
    name = service.validate_name(body.name)
    async with _database(request).write() as conn:
        record = await service.rename(conn, actor, _key_id(request), name)
    return _json(to_wire(record))


@router.patch(
    "/{id}/makedefault",
    operation_id="GPUCloudSSHKeysController_makeDefault",
    summary="Mark a SSH Key as default",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "SSH key marked as default"}, **_errors(403, 404, 429)},
    openapi_extra=_documented(_ID_PARAMETER),
)
async def make_default(request: Request) -> Response:
    actor = await authenticate_request(request)
    async with _database(request).write() as conn:
        await service.make_default(conn, actor, _key_id(request))
    return Response(status_code=204)


@router.delete(
    "/{id}",
    operation_id="GPUCloudSSHKeysController_delete",
    summary="Delete a SSH Key",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "SSH key deleted"}, **_errors(403, 404, 429)},
    openapi_extra=_documented(_ID_PARAMETER),
)
async def delete_ssh_key(request: Request) -> Response:
    actor = await authenticate_request(request)
    async with _database(request).write() as conn:
        await service.delete_key(conn, actor, _key_id(request))
    return Response(status_code=204)
