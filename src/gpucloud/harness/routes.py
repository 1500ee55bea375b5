"""The control operations of a server started for tests, under `/_gpucloud/`.

They are `Operation`s like every other (one router, one error path), open to no API key
but to the server's control token, and left out of the OpenAPI document: that document
describes the hosted API, and a test server's must be the same as any other's. A server
not started for tests has none of them, and answers 404 there like at any unknown path.

- `POST /_gpucloud/reset` → 204: every row of every table deleted, waiting faults, rate
  limit counts and cached answers dropped.
- `POST /_gpucloud/api-keys` `{"owner": str|null, "scopes": [str]}` → 201
  `{"apiKey", "owner", "scopes"}`: a new API key (of a new owner when `owner` is null).
- `POST /_gpucloud/faults` `{"operationId", "status", "times", "delaySeconds",
  "retryAfter"}` → 204: see gpucloud.harness.faults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gpucloud.errors import InvalidInputError
from gpucloud.harness import service
from gpucloud.harness.faults import Fault
from gpucloud.harness.schemas import FaultDto, IssuedAPIKeyDto, NewAPIKeyDto
from gpucloud.http.body import read_model
from gpucloud.http.context import services
from gpucloud.http.routing import Operation, Routes, Success

if TYPE_CHECKING:
    from gpucloud.harness.control import Harness

PREFIX = "/_gpucloud"
TAG = "Test controls"


def control_operations(harness: Harness) -> list[Operation]:
    """The control operations of `harness`'s server."""
    routes = Routes(prefix=PREFIX, tags=(TAG,))

    @routes.post(
        "/reset",
        operation_id="gpucloudTestControls_reset",
        summary="Wipe the server: every table, waiting faults, rate-limit counts",
        success=Success(204, "Wiped"),
        errors=(403,),
        in_schema=False,
    )
    async def reset(request: Request) -> Response:
        harness.check(request)
        async with services(request).database.write() as unit:
            await service.wipe(unit)
        harness.forget(request)
        return Response(status_code=204)

    @routes.post(
        "/api-keys",
        operation_id="gpucloudTestControls_createApiKey",
        summary="A new API key, of a new owner unless one is named",
        success=Success(201, "The secret, shown only now", IssuedAPIKeyDto),
        body=NewAPIKeyDto,
        errors=(403,),
        in_schema=False,
    )
    async def create_api_key(request: Request) -> Response:
        harness.check(request)
        body = await read_model(request, NewAPIKeyDto)
        async with services(request).database.write() as unit:
            secret, owner, scopes = await service.create_api_key(
                unit, owner=body.owner, scopes=body.scopes
            )
        answer = {"apiKey": secret, "owner": owner, "scopes": list(scopes)}
        return Response(orjson.dumps(answer), status_code=201, media_type="application/json")

    @routes.post(
        "/faults",
        operation_id="gpucloudTestControls_injectFault",
        summary="The next calls of an operation answer an error, or wait first",
        success=Success(204, "Injected"),
        body=FaultDto,
        errors=(403,),
        uses_database=False,
        in_schema=False,
    )
    async def inject_fault(request: Request) -> Response:
        harness.check(request)
        body = await read_model(request, FaultDto)
        if body.status is None and body.delaySeconds == 0:
            raise InvalidInputError(
                "A fault with status null only delays; give delaySeconds above 0, or a status"
            )
        fault = Fault(
            status=body.status,
            delay_s=body.delaySeconds,
            retry_after=body.retryAfter,
            remaining=body.times,
        )
        harness.faults.inject(body.operationId, fault)
        return Response(status_code=204)

    return routes.operations
