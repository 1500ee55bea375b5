"""`Harness`: the test controls of one server process, given to `create_app` only by a
server started for tests (`gpucloud serve --ephemeral`, the pytest plugin)."""

from __future__ import annotations

import dataclasses
import hmac

from starlette.requests import Request

from gpucloud.errors import ForbiddenError
from gpucloud.harness import TOKEN_HEADER
from gpucloud.harness.faults import Faults
from gpucloud.http.cache import BodyCache
from gpucloud.http.context import Services
from gpucloud.http.routing import Endpoint, Operation
from gpucloud.ratelimit import RateLimiter

MIN_TOKEN_LENGTH = 32
_REFUSED = (
    f"The test controls need this server's control token in the {TOKEN_HEADER} header; "
    "it is in the file that `gpucloud serve --ephemeral` printed"
)


class Harness:
    """The control token that every control request must carry, the faults waiting for
    the server's operations, and the control operations themselves (gpucloud.harness.routes).
    """

    def __init__(self, token: str) -> None:
        from gpucloud.harness.routes import control_operations

        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"a control token has at least {MIN_TOKEN_LENGTH} characters")
        self._token = token.encode()
        self.faults = Faults()
        self.operations: list[Operation] = control_operations(self)
        self._own = frozenset(op.operation_id for op in self.operations)

    def around(self, operation: Operation, endpoint: Endpoint) -> Endpoint:
        """The endpoint the router serves for `operation`: with its injected faults, for
        every operation but the controls (which a fault must never lock out)."""
        if operation.operation_id in self._own:
            return endpoint
        return self.faults.around(operation, endpoint)

    def check(self, request: Request) -> None:
        """Raises ForbiddenError (403) unless the request carries the control token."""
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(given, self._token):
            raise ForbiddenError(_REFUSED)

    def forget(self, request: Request) -> None:
        """Drop what the process holds besides the database: waiting faults, rate-limit
        counts, cached answers."""
        self.faults.clear()
        context: Services = request.app.services
        if context.settings.redis_url is None:  # counts kept in Redis are shared: left alone
            limiter = RateLimiter(context.settings, context.metrics)
        else:
            limiter = context.limiter
        request.app.services = dataclasses.replace(
            context, limiter=limiter, bodies=BodyCache(context.settings.response_cache_bytes)
        )
