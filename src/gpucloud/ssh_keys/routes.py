"""HTTP routes of the SSH-key resource: parse, call one service, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gpucloud.config import Settings
from gpucloud.db import Database
from gpucloud.http.auth import CurrentPrincipal
from gpucloud.http.body import read_model
from gpucloud.ssh_keys import service
from gpucloud.ssh_keys.schemas import (
    CreateSSHKeyDto,
    ErrorDto,
    RenameSSHKeyDto,
    SSHKeyDto,
    to_wire,
)

PREFIX = "/gpu-cloud/ssh-keys"
TAG = "GPUCloudSSHKeys"

_ERRORS = {
    400: "Invalid request (body, name, key or filter): the message says what to change",
    403: "API key invalid",
    404: "API key not found, or SSH key not found",
    409: "The same public key or name is already registered",
    413: "Request body over 64 KiB",
    415: "Body not sent as application/json",
    429: "Rate limit exceeded; see Retry-After",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorDto, "description": _ERRORS[s]} for s in statuses}


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # The wire dicts are built by to_wire from stored rows: validating them again
    # through a response model would only repeat that work on every request.
    return Response(
        orjson.dumps(content), status_code=status, media_type="application/json", headers=headers
    )


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _body(model: type[Any]) -> dict[str, Any]:
    # The body is read by hand after authentication (see gpucloud.http.body); this
    # documents it in the OpenAPI document as if the framework had read it.
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


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
    openapi_extra=_body(CreateSSHKeyDto),
)
async def create_ssh_key(request: Request, principal: CurrentPrincipal) -> Response:
    settings = _settings(request)
    body = await read_model(request, CreateSSHKeyDto, max_bytes=settings.max_body_bytes)
    new = service.prepare(body.name, body.publicKey)
    async with _database(request).write() as conn:
        record = await service.create(
            conn, principal.owner_id, new, max_keys=settings.max_keys_per_owner
        )
    return _json(to_wire(record), 201, headers={"Location": f"{PREFIX}/{record.id}"})


@router.get(
    "",
    operation_id="GPUCloudSSHKeysController_getUserSSHKeys",
    summary="Retrieve the list of SSH Keys created",
    response_model=list[SSHKeyDto],
    responses={
        200: {"description": "Returns the list of user ssh keys"},
        **_errors(400, 403, 404, 429),
    },
)
async def list_ssh_keys(
    request: Request,
    principal: CurrentPrincipal,
    fingerprint: Annotated[
        str | None, Query(description="Only the key with this SHA256:… or MD5:… fingerprint")
    ] = None,
    name: Annotated[str | None, Query(description="Only the key with exactly this name")] = None,
) -> Response:
    async with _database(request).read() as conn:
        records = await service.list_keys(
            conn, principal.owner_id, fingerprint=fingerprint, name=name
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
)
async def authorized_keys(request: Request, principal: CurrentPrincipal) -> Response:
    async with _database(request).read() as conn:
        lines = await service.authorized_keys(conn, principal.owner_id)
    return Response("".join(f"{line}\n" for line in lines), media_type="text/plain")


@router.get(
    "/{id}",
    operation_id="GPUCloudSSHKeysController_getOne",
    summary="Retrieve one SSH Key",
    response_model=SSHKeyDto,
    responses={200: {"description": "The SSH key"}, **_errors(403, 404, 429)},
)
async def get_ssh_key(request: Request, principal: CurrentPrincipal, id: str) -> Response:
    async with _database(request).read() as conn:
        record = await service.get(conn, principal.owner_id, id)
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
    openapi_extra=_body(RenameSSHKeyDto),
)
async def rename_ssh_key(request: Request, principal: CurrentPrincipal, id: str) -> Response:
    settings = _settings(request)
    body = await read_model(request, RenameSSHKeyDto, max_bytes=settings.max_body_bytes)
    name = service.validate_name(body.name)
    async with _database(request).write() as conn:
        record = await service.rename(conn, principal.owner_id, id, name)
    return _json(to_wire(record))


@router.patch(
    "/{id}/makedefault",
    operation_id="GPUCloudSSHKeysController_makeDefault",
    summary="Mark a SSH Key as default",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "SSH key marked as default"}, **_errors(403, 404, 429)},
)
async def make_default(request: Request, principal: CurrentPrincipal, id: str) -> Response:
    async with _database(request).write() as conn:
        await service.make_default(conn, principal.owner_id, id)
    return Response(status_code=204)


@router.delete(
    "/{id}",
    operation_id="GPUCloudSSHKeysController_delete",
    summary="Delete a SSH Key",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "SSH key deleted"}, **_errors(403, 404, 429)},
)
async def delete_ssh_key(request: Request, principal: CurrentPrincipal, id: str) -> Response:
    async with _database(request).write() as conn:
        await service.delete_key(conn, principal.owner_id, id)
    return Response(status_code=204)
