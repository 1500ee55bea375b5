"""The SSH certificate authority (SPEC 11): the CA key files, and certificates it signs.

The core (keys, certificates, service, errors) knows no web framework and no database:
the `gpucloud ca` commands call `keys`, and each server process holds one
`CertificateAuthority`. The edges are apart: `issue` certifies a registered key in a
unit of work, `routes` and `schemas` are its HTTP side. See docs/certificates.md.

    keys.py          the key files: init, load, rotate, retire
    certificates.py  the principal and validity rules, and the signature
    service.py       CertificateAuthority: what a server process holds and calls
    errors.py        the domain errors (their tree is drawn there)
    issue.py         certify a registered key: lookup, expiry, audit event, last use
    routes.py        GET /gpu-cloud/ssh-ca and POST /gpu-cloud/ssh-keys/{id}/certificate
    schemas.py       their wire models
"""

from gpucloud.ca.certificates import (
    EXTENSIONS,
    IssuedCertificate,
    ValidityPolicy,
    principal_for,
    sign,
)
from gpucloud.ca.errors import (
    CAKeyExistsError,
    CAKeyFileError,
    CANotConfiguredError,
    CAUnavailableError,
    PrincipalError,
    SigningKeyRetireError,
    UncertifiableKeyError,
    UnknownCAKeyError,
    ValidityError,
)
from gpucloud.ca.keys import CAKeys, CAPublicKey
from gpucloud.ca.service import CertificateAuthority

__all__ = [
    "EXTENSIONS",
    "CAKeyExistsError",
    "CAKeyFileError",
    "CAKeys",
    "CANotConfiguredError",
    "CAPublicKey",
    "CAUnavailableError",
    "CertificateAuthority",
    "IssuedCertificate",
    "PrincipalError",
    "SigningKeyRetireError",
    "UncertifiableKeyError",
    "UnknownCAKeyError",
    "ValidityError",
    "ValidityPolicy",
    "principal_for",
    "sign",
]
