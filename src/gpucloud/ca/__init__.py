"""The SSH certificate authority (SPEC 11): the CA key files, and certificates it signs.

No web framework and no database here: the routes call `CertificateAuthority`, the
`gpucloud ca` commands call `keys`. See docs/certificates.md.

    keys.py          the key files: init, load, rotate, retire
    certificates.py  the principal and validity rules, and the signature
    service.py       CertificateAuthority: what a server process holds and calls
    errors.py        the domain errors (their tree is drawn there)
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
