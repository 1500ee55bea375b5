"""HTTP routes of the SSH-key resource: parse, call one service, answer.

Each handler runs after the router has authenticated the caller (`actor`); it reads
its path, query and body itself (the body only after authentication, SPEC 2), opens one
unit of work, and shapes the answer. The list and the authorized_keys file are kept per
owner and version (gpucloud.http.cache) and answered 304 to a matching If-None-Match.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gpucloud.api_keys.service import AUTHORIZED_KEYS, SSH_KEYS
from gpucloud.audit.service import Actor
from gpucloud.db import utcnow
from gpucloud.errors import FieldProblem, InvalidInputError
from gpucloud.http.body import read_model
from gpucloud.http.cache import Entry, answer, make_entry
from gpucloud.http.context import Services, header, services
from gpucloud.http.routing import Routes, Success
from gpucloud.idempotency import service as idempotency
from gpucloud.ssh_keys import service
from gpucloud.ssh_keys.schemas import CreateSSHKeyDto, RenameSSHKeyDto, SSHKeyDto, to_wire

PREFIX = "/gpu-cloud/ssh-keys"
TAG = "GPUCloudSSHKeys"

_ID_PARAMETER = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of an earlier answer: 304 with no body if it is still current",
    "schema": {"type": "string"},
}
_IDEMPOTENCY_PARAMETER = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Makes retries safe: a repeat with the same key and body within 24 hours "
    "gets the first answer instead of a second key or a 409",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_FILTER_PARAMETERS = (
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
)
_LOOKUP_PARAMETER = {
    "name": "fingerprint",
    "in": "query",
    "required": False,
    "description": "sshd's %f (SHA256:…): only that key's line, or an empty body when you have "
    "no such key that has not expired; records the key's lastUsedAt (to the minute). The "
    "answer has its own strong ETag, answered 304 like the whole file's",
    "schema": {"type": "string"},
}
_IDEMPOTENCY_HEADER = idempotency.HEADER.lower().encode()
_NOT_MODIFIED = {304: "Not modified: the If-None-Match tag is current (no body)"}
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"

routes = Routes(prefix=PREFIX, tags=(TAG,))


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # The wire dicts are built by to_wire from stored rows: validating them again
    # through a response model would only repeat that work on every request.
    return Response(orjson.dumps(content), status_code=status, media_type=_JSON, headers=headers)


def _send(stored: idempotency.StoredAnswer) -> Response:
    headers = {"Location": stored.location} if stored.location else None
    return Response(stored.body, status_code=stored.status, media_type=_JSON, headers=headers)


async def _owner_body(context: Services, actor: Actor, kind: str) -> Entry:
    """The owner's list (`kind` "list") or authorized_keys file, as of its version now."""
    entry = context.bodies.get(actor.owner_id, kind, actor.owner_version)
    if entry is not None:
        return entry
    async with context.database.read() as unit:
        keys = await service.owner_keys(unit, actor.owner_id)
    now = utcnow()
    # Both bodies come from the same read: fill both, the other is likely asked next.
    listed = context.bodies.put(
        actor.owner_id, "list", keys.version, orjson.dumps([to_wire(k) for k in keys.keys]), _JSON
    )
    # The file leaves expired keys out: it holds only until the next key expires.
    lines = "".join(f"{line}\n" for line in service.authorized_keys_lines(keys.keys, now))
    until = service.valid_until(keys.keys, now)
    file = context.bodies.put(
        actor.owner_id,
        "authorized_keys",
        keys.version,
        lines.encode(),
        _TEXT,
        valid_until=until.timestamp() if until else None,
    )
    return listed if kind == "list" else file


@routes.post(
    "",
    operation_id="GPUCloudSSHKeysController_create",
    summary="Register an SSH key",
    scope=SSH_KEYS,
    success=Success(201, "Return the created ssh key", SSHKeyDto),
    body=CreateSSHKeyDto,
    parameters=(_IDEMPOTENCY_PARAMETER,),
    errors=(409,),
)
async def create_ssh_key(request: Request, actor: Actor) -> Response:
    context = services(request)
    body = await read_model(request, CreateSSHKeyDto)
    new = service.prepare(body.name, body.publicKey, body.expiresAt)
    retry = idempotency.from_header(
        header(request, _IDEMPOTENCY_HEADER),
        {"name": body.name, "publicKey": body.publicKey, "expiresAt": body.expiresAt},
    )
    async with context.database.write() as unit:
        if retry is not None:
            stored = await idempotency.replay(unit, actor.owner_id, retry)
            if stored is not None:
                return _send(stored)
        record = await service.create(
            unit, actor, new, max_keys=context.settings.max_keys_per_owner
        )
        created = idempotency.StoredAnswer(
            status=201, body=orjson.dumps(to_wire(record)), location=f"{PREFIX}/{record.id}"
        )
        if retry is not None:
            await idempotency.remember(unit, actor.owner_id, retry, created)
    return _send(created)


@routes.get(
    "",
    operation_id="GPUCloudSSHKeysController_getUserSSHKeys",
    summary="List your SSH keys",
    scope=SSH_KEYS,
    success=Success(200, "Returns the list of user ssh keys", (SSHKeyDto,), also=_NOT_MODIFIED),
    parameters=(*_FILTER_PARAMETERS, _IF_NONE_MATCH),
    errors=(400,),
)
async def list_ssh_keys(request: Request, actor: Actor) -> Response:
    context = services(request)
    # Parsing an empty query string is work too: most lists have none.
    query = request.query_params if request.scope["query_string"] else {}
    if "fingerprint" in query or "name" in query:
        async with context.database.read() as unit:
            found = await service.find_keys(
                unit, actor.owner_id, fingerprint=query.get("fingerprint"), name=query.get("name")
            )
        return _json([to_wire(record) for record in found])
    return answer(request, await _owner_body(context, actor, "list"))


@routes.get(
    "/authorized_keys",
    operation_id="GPUCloudSSHKeysController_authorizedKeys",
    summary="Your keys as an authorized_keys file (default first)",
    scope=AUTHORIZED_KEYS,
    success=Success(
        200,
        "One public key a line, default key first; keys that have expired are left out, and "
        'a key that expires has expiry-time="YYYYMMDDHHMMSSZ" in front',
        "text/plain",
        _NOT_MODIFIED,
    ),
    parameters=(_LOOKUP_PARAMETER, _IF_NONE_MATCH),
    errors=(400,),
)
async def authorized_keys(request: Request, actor: Actor) -> Response:
    context = services(request)
    if request.scope["query_string"]:
        fingerprint = request.query_params.get("fingerprint")
        if fingerprint is not None:
            return answer(request, await _login_line(context, actor, fingerprint))
    return answer(request, await _owner_body(context, actor, "authorized_keys"))


async def _login_line(context: Services, actor: Actor, fingerprint: str) -> Entry:
    """The line of the key an SSH server asks about for a login, recording its use."""
    record = await service.key_for_login(context.database, actor.owner_id, fingerprint)
    now = utcnow()
    if record is None or not record.usable(now):
        return make_entry(actor.owner_version, b"", _TEXT)
    if service.use_is_new(record, now):
        async with context.database.write() as unit:
            await service.record_use(unit, actor.owner_id, record.id, now)
    line = service.authorized_keys_line(record) + "\n"
    return make_entry(actor.owner_version, line.encode(), _TEXT)


@routes.patch(
    "/{id}/makedefault",
    operation_id="GPUCloudSSHKeysController_makeDefault",
    summary="Make an SSH key your default",
    scope=SSH_KEYS,
    success=Success(204, "SSH key marked as default"),
    parameters=(_ID_PARAMETER,),
)
async def make_default(request: Request, actor: Actor) -> Response:
    async with services(request).database.write() as unit:
        await service.make_default(unit, actor, request.path_params["id"])
    return Response(status_code=204)


@routes.get(
    "/{id}",
    operation_id="GPUCloudSSHKeysController_getOne",
    summary="One SSH key",
    scope=SSH_KEYS,
    success=Success(200, "The SSH key", SSHKeyDto),
    parameters=(_ID_PARAMETER,),
)
async def get_ssh_key(request: Request, actor: Actor) -> Response:
    async with services(request).database.read() as unit:
        record = await service.get(unit, actor.owner_id, request.path_params["id"])
    return _json(to_wire(record))


@routes.patch(
    "/{id}",
    operation_id="GPUCloudSSHKeysController_rename",
    summary="Rename an SSH key, or set or remove its expiry",
    scope=SSH_KEYS,
    success=Success(200, "The SSH key as changed", SSHKeyDto),
    body=RenameSSHKeyDto,
    parameters=(_ID_PARAMETER,),
    errors=(409,),
)
async def rename_ssh_key(request: Request, actor: Actor) -> Response:
    body = await read_model(request, RenameSSHKeyDto)
    if not body.changes_name and not body.changes_expiry:
        problem = 'The body changes nothing; give name, expiresAt or both, e.g. {"name": "desktop"}'
        raise InvalidInputError(problem, details=[FieldProblem("body", problem)])
    changes: dict[str, Any] = {}
    if body.changes_name:
        changes["name"] = service.validate_name(body.name)
    if body.changes_expiry:
        changes["expires_at"] = service.validate_expiry(body.expiresAt, utcnow())
    async with services(request).database.write() as unit:
        record = await service.update_key(unit, actor, request.path_params["id"], **changes)
    return _json(to_wire(record))


@routes.delete(
    "/{id}",
    operation_id="GPUCloudSSHKeysController_delete",
    summary="Delete an SSH key",
    scope=SSH_KEYS,
    success=Success(204, "SSH key deleted"),
    parameters=(_ID_PARAMETER,),
)
async def delete_ssh_key(request: Request, actor: Actor) -> Response:
    async with services(request).database.write() as unit:
        await service.delete_key(unit, actor, request.path_params["id"])
    return Response(status_code=204)
