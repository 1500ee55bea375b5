"""What every request may use, built once per app: `services(request)` hands it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import Scope

if TYPE_CHECKING:
    from gpucloud.ca import CertificateAuthority
    from gpucloud.config import Settings
    from gpucloud.db import Database
    from gpucloud.http.cache import BodyCache
    from gpucloud.ops.metrics import Metrics
    from gpucloud.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class Services:
    """The app's settings and the objects built from them (one of each per process)."""

    settings: Settings
    database: Database
    metrics: Metrics
    limiter: RateLimiter
    bodies: BodyCache
    # The SSH CA (SPEC 11): unconfigured when the settings name no key file.
    ca: CertificateAuthority


def header(request: Request, name: bytes) -> str | None:
    """The value of one request header (`name` lowercase), or None.

    What `request.headers.get` answers (the first of repeated headers), without building
    Starlette's Headers object: the hot paths (the request id, authentication,
    If-None-Match) read one header each, from the dict `headers_of` builds once.
    """
    value = headers_of(request.scope).get(name)
    return None if value is None else value.decode("latin-1")


def headers_of(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lowercase name, the first of each; built once a request
    (in C: one pass over the list instead of one Python loop per header read)."""
    state = scope.setdefault("state", {})
    found: dict[bytes, bytes] | None = state.get(_HEADERS)
    if found is None:
        found = state[_HEADERS] = dict(reversed(scope["headers"]))
    return found


_HEADERS = "gpucloud.headers"


def services(request: Request) -> Services:
    """The services of the app serving `request` (set by gpucloud.app.create_app)."""
    found: Services = request.scope["app"].services
    return found
