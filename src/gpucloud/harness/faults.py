"""Faults that a test asks for: the next calls of an operation answer an error, or wait.

`Faults.around` wraps an operation's endpoint (the router applies it to every operation
of a server started for tests, and to no other server's). A call whose operation has a
fault waiting takes the oldest one: it waits `delay_s` (asyncio.sleep, so other requests
go on being served), then answers `status` in the one error shape without running the
operation — nothing is read, authenticated or changed — or, when `status` is None, runs
the operation as usual. Each fault serves `times` calls; faults injected for one
operation serve in the order they were injected.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response

from gpucloud.errors import InvalidInputError
from gpucloud.http.errors import error_response
from gpucloud.http.routing import Endpoint, Operation

# The statuses whose answers tell the client when to come back (SPEC 12).
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(slots=True)
class Fault:
    """What the next `remaining` calls of one operation answer."""

    status: int | None  # None: only the delay, then the operation runs
    delay_s: float
    retry_after: int  # seconds, sent as Retry-After with a 429 or a 503
    remaining: int


class Faults:
    """The faults waiting for each operation of one server process."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[Fault]] = {}
        self._operations: set[str] = set()

    def around(self, operation: Operation, endpoint: Endpoint) -> Endpoint:
        """`endpoint`, answering the faults injected for `operation` first."""
        operation_id = operation.operation_id
        self._operations.add(operation_id)
        waiting = self._waiting

        async def with_faults(request: Request) -> Response:
            if operation_id not in waiting:  # no fault: one dict look-up
                return await endpoint(request)
            fault = self._take(operation_id)
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.status is None:
                return await endpoint(request)
            return _answer(request, operation_id, fault)

        with_faults.__name__ = getattr(endpoint, "__name__", operation_id)
        return with_faults

    def inject(self, operation_id: str, fault: Fault) -> None:
        """Queue `fault` for the next calls of `operation_id`.

        Raises InvalidInputError for an id that is not one of this server's operations.
        """
        if operation_id not in self._operations:
            known = ", ".join(sorted(self._operations))
            raise InvalidInputError(
                f"No operation {operation_id!r} can be given a fault; use one of the "
                f"operationIds of /openapi.json: {known}"
            )
        self._waiting.setdefault(operation_id, deque()).append(fault)

    def clear(self) -> None:
        """Forget every waiting fault."""
        self._waiting.clear()

    def _take(self, operation_id: str) -> Fault:
        queue = self._waiting[operation_id]
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
            if not queue:
                del self._waiting[operation_id]
        return fault


def _answer(request: Request, operation_id: str, fault: Fault) -> Response:
    status = fault.status
    assert status is not None
    message = f"{HTTPStatus(status).phrase}: a fault the test injected into {operation_id}"
    headers = None
    if status in RETRY_AFTER_STATUSES:
        headers = {"Retry-After": str(fault.retry_after)}
        message += "; retry after the number of seconds in Retry-After"
    return error_response(request, status, message, headers=headers)
