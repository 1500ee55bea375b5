"""The wire models of the SSH-key resource, named as in the source document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gpucloud.ssh_keys.service import SSHKeyRecord
from gpucloud.wire import iso_timestamp

_EXAMPLE_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvAV0mvuPx5XbnLrE5DHV7RWHA6dObnZxOv4kJCqTwF ada@laptop"
)


class CreateSSHKeyDto(BaseModel):
    """Body of `POST /gpu-cloud/ssh-keys`. Unknown properties are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"example": {"name": "laptop", "publicKey": _EXAMPLE_KEY}},
    )

    name: str = Field(description="1 to 128 characters, trimmed; unique among your keys")
    publicKey: str = Field(
        description="One OpenSSH public key line (the .pub file), or an RFC 4716 block"
    )


class RenameSSHKeyDto(BaseModel):
    """Body of `PATCH /gpu-cloud/ssh-keys/{id}`."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"example": {"name": "desktop"}})

    name: str = Field(description="1 to 128 characters, trimmed; unique among your keys")


class SSHKeyDto(BaseModel):
    """An SSH key as the API shows it."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id", description="24 lowercase hex characters")
    name: str
    publicKey: str
    isDefault: bool
    createdAt: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.mmmZ")
    updatedAt: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.mmmZ")
    fingerprint: str = Field(description="SHA256:…, as ssh-keygen -l -E sha256 prints")
    fingerprintMd5: str = Field(description="MD5:aa:bb:…, as ssh-keygen -l -E md5")
    keyType: str = Field(description="e.g. ssh-ed25519")
    keyBits: int = Field(description="as ssh-keygen -l prints")


def to_wire(record: SSHKeyRecord) -> dict[str, Any]:
    """The `SSHKeyDto` JSON object of a stored key."""
    return {
        "_id": record.id,
        "name": record.name,
        "publicKey": record.public_key,
        "isDefault": record.is_default,
        "createdAt": iso_timestamp(record.created_at),
        "updatedAt": iso_timestamp(record.updated_at),
        "fingerprint": record.fingerprint_sha256,
        "fingerprintMd5": record.fingerprint_md5,
        "keyType": record.key_type,
        "keyBits": record.key_bits,
    }
