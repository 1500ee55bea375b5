"""What every request may use, built once per app: `services(request)` hands it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

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

    What `request.headers.get` answers, without building Starlette's Headers object:
    the hot paths (authentication, If-None-Match) read one header each.
    """
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def services(request: Request) -> Services:
    """The services of the app serving `request` (set by gpucloud.app.create_app)."""
    found: Services = request.scope["app"].services
    return found
