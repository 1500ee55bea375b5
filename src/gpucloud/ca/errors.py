"""The errors of the SSH certificate authority, each a kind of the project's errors.

    GpuCloudError
     ├── InvalidInputError (400)
     │    ├── ValidityError             `validFor` unreadable or outside the allowed range
     │    ├── PrincipalError            the owner's name cannot be a certificate principal
     │    ├── UncertifiableKeyError     the key is expired, or of a type we cannot certify
     │    └── SigningKeyRetireError     `ca retire` named the key that signs
     ├── NotFoundError (404)
     │    └── UnknownCAKeyError         `ca retire` named no trusted key
     ├── ConflictError (409)
     │    └── CAKeyExistsError          `ca init` would overwrite a key file
     ├── NotSupportedError (501)
     │    └── CANotConfiguredError      this server has no CA key file configured
     └── UnavailableError (503)
          ├── CAKeyFileError            the key files cannot be used (for the operator)
          └── CAUnavailableError        what an API caller sees of a CAKeyFileError

No CA configured is a 501, not a 503: it is how this server is set up, and a client
that retries (as ours does on 503) would only wait to be refused again
(docs/decisions.md).

A CAKeyFileError names the file and the fix (`chmod 600 …`): right for the operator's
terminal and the server log, not for an API caller, who gets a CAUnavailableError
raised from it (so the server's error log shows the cause).
"""

from __future__ import annotations

from gpucloud.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    UnavailableError,
)


class ValidityError(InvalidInputError):
    """The requested validity cannot be read, or is outside the allowed range."""


class PrincipalError(InvalidInputError):
    """The owner's name cannot be used as a certificate principal."""


class UncertifiableKeyError(InvalidInputError):
    """The SSH key cannot be certified: it has expired, or its type is not supported."""


class SigningKeyRetireError(InvalidInputError):
    """`ca retire` was asked to retire the key that signs new certificates."""


class UnknownCAKeyError(NotFoundError):
    """No trusted CA key has the fingerprint given."""


class CAKeyExistsError(ConflictError):
    """`ca init` was pointed at a file that already exists."""


class CANotConfiguredError(NotSupportedError):
    """No CA key file is configured: this server does not sign certificates."""


class CAKeyFileError(UnavailableError):
    """The CA key files are missing, unreadable, unprotected or malformed."""


class CAUnavailableError(UnavailableError):
    """The CA cannot sign right now; the cause is in the server's log."""
