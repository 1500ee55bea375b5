"""The wire models of the certificate operation (SPEC 11)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gpucloud.ca.certificates import IssuedCertificate
from gpucloud.wire import iso_timestamp


class CertifySSHKeyDto(BaseModel):
    """Body of `POST /gpu-cloud/ssh-keys/{id}/certificate`; optional, as is its field."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"example": {"validFor": "8h"}})

    # Any JSON value: the validity rule reads it and says what is wrong, with the range.
    validFor: Any = Field(
        default=None,
        description="How long the certificate is valid: a number and a unit (s, m, h, d), "
        "from 30s up to the server's maximum (24h unless configured); default 8h",
        json_schema_extra={"type": "string", "examples": ["8h", "30m"]},
    )


class SSHCertificateDto(BaseModel):
    """A user certificate of a registered key, signed by the service's CA."""

    certificate: str = Field(
        description="The OpenSSH certificate line, TYPE-cert-v01@openssh.com AAAA… comment; "
        "save it as <key>-cert.pub beside the key's .pub file"
    )
    serial: str = Field(description="The random 64-bit serial, in decimal")
    keyId: str = Field(description="gpucloud:owner=<owner>:key=<SSH key id>:serial=<serial>")
    principals: list[str] = Field(description="The owner's name, alone")
    validAfter: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.mmmZ: a minute before issue")
    validBefore: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.mmmZ")


def to_wire(issued: IssuedCertificate) -> dict[str, Any]:
    """The `SSHCertificateDto` JSON object of a certificate."""
    return {
        "certificate": issued.certificate,
        "serial": issued.serial,
        "keyId": issued.key_id,
        "principals": list(issued.principals),
        "validAfter": iso_timestamp(issued.valid_after),
        "validBefore": iso_timestamp(issued.valid_before),
    }
