"""The typed models the client returns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SSHKey:
    """An SSH key as the API shows it (`SSHKeyDto`), with Python names and types.

    `fingerprint` is `SHA256:…` and `fingerprint_md5` is `MD5:aa:bb:…`, as
    `ssh-keygen -l -E sha256|md5` prints them; `key_bits` as `ssh-keygen -l` prints.
    A server that sends only the source document's six fields (the hosted API does) gets
    the other four computed here from `public_key`; they are None only when this
    package's key parser cannot read that key. `expires_at` is None for a key that never
    expires, `last_used_at` (to the minute) for one never used for a login — and both
    for a server that does not send them.
    """

    id: str
    name: str
    public_key: str
    is_default: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    fingerprint: str | None
    fingerprint_md5: str | None
    key_type: str
    key_bits: int | None
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SSHKey:
        """The key of an `SSHKeyDto` JSON object; raises ValueError if it is not one."""
        try:
            public_key = _string(data, "publicKey")
            derived = _derived(data, public_key)
            is_default = data["isDefault"]
            if not isinstance(is_default, bool):
                raise ValueError("isDefault is not a boolean")
            return cls(
                id=_string(data, "_id"),
                name=_string(data, "name"),
                public_key=public_key,
                is_default=is_default,
                created_at=_timestamp(data, "createdAt"),
                updated_at=_timestamp(data, "updatedAt"),
                **derived,
                expires_at=_optional_timestamp(data, "expiresAt"),
                last_used_at=_optional_timestamp(data, "lastUsedAt"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an SSHKeyDto: {exc!r}") from None

    def to_wire(self) -> dict[str, Any]:
        """The `SSHKeyDto` JSON object of this key, as the API sends it."""
        return {
            "_id": self.id,
            "name": self.name,
            "publicKey": self.public_key,
            "isDefault": self.is_default,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "fingerprint": self.fingerprint,
            "fingerprintMd5": self.fingerprint_md5,
            "keyType": self.key_type,
            "keyBits": self.key_bits,
            "expiresAt": _iso(self.expires_at) if self.expires_at else None,
            "lastUsedAt": _iso(self.last_used_at) if self.last_used_at else None,
        }


def _string(data: Mapping[str, Any], field: str) -> str:
    value = data[field]
    if not isinstance(value, str):
        raise ValueError(f"{field} is not a string")
    return value


def _timestamp(data: Mapping[str, Any], field: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(_string(data, field))
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _optional_timestamp(data: Mapping[str, Any], field: str) -> dt.datetime | None:
    return None if data.get(field) is None else _timestamp(data, field)


def _iso(value: dt.datetime) -> str:
    """JavaScript's toISOString, the API's timestamp form."""
    value = value.astimezone(dt.UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def _derived(data: Mapping[str, Any], public_key: str) -> dict[str, Any]:
    """fingerprint, fingerprint_md5, key_type and key_bits: the server's, else computed."""
    sent = {
        "fingerprint": data.get("fingerprint"),
        "fingerprint_md5": data.get("fingerprintMd5"),
        "key_type": data.get("keyType"),
        "key_bits": data.get("keyBits"),
    }
    complete = (
        isinstance(sent["fingerprint"], str)
        and isinstance(sent["fingerprint_md5"], str)
        and isinstance(sent["key_type"], str)
        and isinstance(sent["key_bits"], int)
    )
    if complete:
        return sent
    # Imported here: only servers that omit these fields need the parser (and cryptography).
    from gpucloud.pubkey import PublicKeyError, parse_public_key

    try:
        parsed = parse_public_key(public_key)
    except PublicKeyError:
        return {
            "fingerprint": None,
            "fingerprint_md5": None,
            "key_type": public_key.split(maxsplit=1)[0] if public_key.strip() else "",
            "key_bits": None,
        }
    return {
        "fingerprint": parsed.fingerprint_sha256,
        "fingerprint_md5": parsed.fingerprint_md5,
        "key_type": parsed.key_type,
        "key_bits": parsed.bits,
    }


@dataclass(frozen=True, slots=True)
class SSHCertificate:
    """A user certificate of a registered key, as the API answers it (`SSHCertificateDto`).

    `certificate` is the OpenSSH line to save as `<key>-cert.pub` beside the key's
    `.pub` file, where `ssh` finds it by itself; `serial` is decimal text (64-bit
    numbers do not survive JSON readers that use doubles); the times are UTC.
    """

    certificate: str
    serial: str
    key_id: str
    principals: tuple[str, ...]
    valid_after: dt.datetime
    valid_before: dt.datetime

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SSHCertificate:
        """The certificate of an `SSHCertificateDto` JSON object; raises ValueError if not one."""
        try:
            principals = data["principals"]
            if not isinstance(principals, list) or not all(isinstance(p, str) for p in principals):
                raise ValueError("principals is not a list of strings")
            return cls(
                certificate=_string(data, "certificate"),
                serial=_string(data, "serial"),
                key_id=_string(data, "keyId"),
                principals=tuple(principals),
                valid_after=_timestamp(data, "validAfter"),
                valid_before=_timestamp(data, "validBefore"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an SSHCertificateDto: {exc!r}") from None
