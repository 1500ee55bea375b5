"""The root of every error gpucloud raises on purpose.

Domain errors say what went wrong in words a user can act on, and know nothing of
HTTP: `gpucloud.http.errors` maps each kind to a status code, in one place.

    GpuCloudError
     ├── InvalidInputError        the request is malformed or breaks a rule (400)
     │    └── (gpucloud.pubkey.PublicKeyError)   the public key is not acceptable
     ├── NotFoundError            the thing named does not exist for this caller (404)
     ├── ConflictError            it would duplicate something that exists (409)
     ├── AuthenticationError      the API key is missing, malformed, revoked or expired (403)
     │    └── UnknownAPIKeyError  a well-formed API key that matches no key (404)
     ├── ForbiddenError           a valid API key without the scope the request needs (403)
     ├── RateLimitedError         too many requests; retry after `retry_after` s (429)
     ├── NotSupportedError        this server is not set up to do that at all (501)
     └── UnavailableError         a dependency (the database) cannot be reached (503)
"""

from __future__ import annotations

from dataclasses import dataclass


class GpuCloudError(Exception):
    """Base class: `message` is one readable sentence meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid field of a request body, for the error's `details` list."""

    field: str
    message: str


class InvalidInputError(GpuCloudError):
    """The request is malformed or breaks a validation rule."""

    def __init__(self, message: str, *, details: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class NotFoundError(GpuCloudError):
    """The resource does not exist, or belongs to someone else."""


class ConflictError(GpuCloudError):
    """The request would create a duplicate."""


class AuthenticationError(GpuCloudError):
    """The API key is missing, malformed, revoked or expired."""


class UnknownAPIKeyError(AuthenticationError):
    """A well-formed API key that matches no stored key."""


class ForbiddenError(GpuCloudError):
    """The API key is valid, but not for this: it lacks the scope the request needs."""


class RateLimitedError(GpuCloudError):
    """Too many requests; `retry_after` is the number of seconds to wait."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotSupportedError(GpuCloudError):
    """This server is not configured to do what was asked; retrying will not help."""


class UnavailableError(GpuCloudError):
    """A dependency the request needs cannot be reached right now."""
