"""The wire models of the SSH-key resource, named as in the source document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gpucloud.ssh_keys.service import SSHKeyRecord
from gpucloud.wire import iso_timestamp

_EXPIRES_AT = (
    "Optional: when the key stops opening logins; UTC, YYYY-MM-DDTHH:MM:SS.mmmZ, in the future"
)


def _no_default(schema: dict[str, Any]) -> None:
    # The field may be left out, but it has no value of its own to document.
    schema.pop("default", None)


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
    expiresAt: str | None = Field(
        default=None,
        description=_EXPIRES_AT + " (then listed, no longer served to SSH servers); "
        "null or absent: no expiry",
    )


class RenameSSHKeyDto(BaseModel):
    """Body of `PATCH /gpu-cloud/ssh-keys/{id}`: a new name, a new expiry, or both."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {"name": "desktop", "expiresAt": "2030-01-31T12:00:00.000Z"},
            "minProperties": 1,
        },
    )

    name: str = Field(
        default="",
        description="1 to 128 characters, trimmed; unique among your keys",
        json_schema_extra=_no_default,
    )
    expiresAt: str | None = Field(
        default=None,
        description=_EXPIRES_AT + "; null removes the expiry",
        json_schema_extra=_no_default,
    )

    @property
    def changes_name(self) -> bool:
        """Whether the body holds `name`."""
        return "name" in self.model_fields_set

    @property
    def changes_expiry(self) -> bool:
        """Whether the body holds `expiresAt` (null included: it removes the expiry)."""
        return "expiresAt" in self.model_fields_set


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
    expiresAt: str | None = Field(
        description="UTC, YYYY-MM-DDTHH:MM:SS.mmmZ; null if the key never expires. An "
        "expired key stays listed and is left out of authorized_keys"
    )
    lastUsedAt: str | None = Field(
        description="The last minute the key was handed to an SSH server for a login "
        "(authorized_keys?fingerprint=) or certified, UTC; null if never"
    )


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
        "expiresAt": iso_timestamp(record.expires_at) if record.expires_at else None,
        "lastUsedAt": iso_timestamp(record.last_used_at) if record.last_used_at else None,
    }
