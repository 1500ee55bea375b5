"""HTTP routes of the SSH CA (SPEC 11): the trust list, and certificates of registered keys.

`GET /gpu-cloud/ssh-ca` is open (instances fetch it at boot, with no API key);
`POST /gpu-cloud/ssh-keys/{id}/certificate` needs the `ssh-keys` scope. Both use the
process's one CertificateAuthority (built with the app), which reads the key files
again whenever they change, so a `gpucloud ca rotate` shows at the next request.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gpucloud.api_keys.service import SSH_KEYS
from gpucloud.audit.service import Actor
from gpucloud.ca import issue
from gpucloud.ca.errors import CANotConfiguredError
from gpucloud.ca.schemas import CertifySSHKeyDto, SSHCertificateDto, to_wire
from gpucloud.ca.service import NOT_CONFIGURED
from gpucloud.http.body import read_model
from gpucloud.http.context import services
from gpucloud.http.routing import Routes, Success
from gpucloud.ssh_keys.routes import PREFIX, TAG

_ID_PARAMETER = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

routes = Routes(tags=(TAG,))
_CA_TAGS = ("GPUCloudSSHCA",)


@routes.get(
    "/gpu-cloud/ssh-ca",
    operation_id="GPUCloudSSHCAController_trustList",
    tags=_CA_TAGS,
    summary="The SSH CA public keys that instances trust (TrustedUserCAKeys)",
    success=Success(
        200,
        "One OpenSSH public-key line per CA key to trust, the signing key first",
        "text/plain",
    ),
    errors=(501, 503),
    error_descriptions={
        501: "This server has no SSH CA: it issues no certificates",
        503: "The server's SSH CA key cannot be used right now; retry after Retry-After seconds",
    },
    uses_database=False,
)
async def trust_list(request: Request) -> Response:
    # The CA key files change on disk (`gpucloud ca rotate`): never cached by the client.
    return Response(
        services(request).ca.trust_list(),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@routes.post(
    PREFIX + "/{id}/certificate",
    operation_id="GPUCloudSSHKeysController_certify",
    summary="Sign a short-lived SSH user certificate for a key",
    scope=SSH_KEYS,
    success=Success(201, "The certificate, signed by the service's CA", SSHCertificateDto),
    body=CertifySSHKeyDto,
    body_required=False,
    parameters=(_ID_PARAMETER,),
    errors=(501,),
    error_descriptions={
        400: "Invalid request: validFor unreadable or out of range, the key expired, or the "
        "owner's name cannot be a principal; the message says what to change",
        404: "API key not found, or SSH key not found",
        501: "This server has no SSH CA: it issues no certificates; retrying will not help",
        503: "The database or the server's SSH CA key is unavailable; retry after Retry-After "
        "seconds",
    },
)
async def certify_ssh_key(request: Request, actor: Actor) -> Response:
    context = services(request)
    if not context.ca.configured:
        # Before the body: no request can succeed on this server, whatever it asks.
        raise CANotConfiguredError(NOT_CONFIGURED)
    body = await _body(request)
    # The validity is checked before the database is: a 400 needs no unit of work.
    context.ca.policy.resolve(body.validFor)
    async with context.database.write() as unit:
        issued = await issue.certify(
            unit, actor, context.ca, request.path_params["id"], valid_for=body.validFor
        )
    return Response(orjson.dumps(to_wire(issued)), status_code=201, media_type="application/json")


async def _body(request: Request) -> CertifySSHKeyDto:
    """The body, or the defaults when the request sends none.

    No body means no Content-Type, and a Content-Length of 0 or none with no
    Transfer-Encoding (so no bytes follow); anything else is read, and judged, as JSON.
    """
    headers = request.headers
    if (
        "content-type" not in headers
        and headers.get("content-length", "0") == "0"
        and "transfer-encoding" not in headers
    ):
        return CertifySSHKeyDto()
    return await read_model(request, CertifySSHKeyDto)
