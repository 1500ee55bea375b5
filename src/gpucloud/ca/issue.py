"""Certify a registered SSH key: the rules of SPEC 11 that need the database.

The one service of the certificate operation. In one unit of work it finds the caller's
key (404 otherwise), refuses an expired one, signs (gpucloud.ca.service), and records
the certificate in the audit log and as the key's last use; the caller owns the unit,
so a certificate whose event could not be written is never handed out.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select

from gpucloud.audit import service as audit
from gpucloud.audit.service import Actor
from gpucloud.ca.certificates import IssuedCertificate
from gpucloud.ca.service import CertificateAuthority
from gpucloud.db import Statement, Unit, utcnow
from gpucloud.owners.models import owners
from gpucloud.ssh_keys import service as ssh_keys

ACTION = "ssh_key.certify"
_OWNER_NAME = Statement(select(owners.c.name).where(owners.c.id == bindparam("owner_id")))


def audit_summary(issued: IssuedCertificate) -> str:
    """What the audit event of a certificate says of it: serial and validity (UTC)."""
    return (
        f"certificate serial={issued.serial} valid {_second(issued.valid_after)}"
        f"..{_second(issued.valid_before)}"
    )


async def certify(
    unit: Unit,
    actor: Actor,
    ca: CertificateAuthority,
    key_id: str,
    *,
    valid_for: str | None,
) -> IssuedCertificate:
    """A certificate of the actor's key `key_id`, valid for `valid_for` (None: the default).

    Raises NotFoundError for an id the owner does not have, UncertifiableKeyError for
    an expired key, and what CertificateAuthority.certify raises.
    """
    record = await ssh_keys.get(unit, actor.owner_id, key_id)
    owner = await unit.fetch_one(_OWNER_NAME, {"owner_id": actor.owner_id})
    now = utcnow()
    issued = ca.certify(
        record.public_key,
        owner=str(owner.name) if owner is not None else "",
        key_id=record.id,
        valid_for=valid_for,
        # An expired key is refused (UncertifiableKeyError); a certificate never outlives it.
        key_expires_at=record.expires_at,
        now=now,
    )
    await audit.record(
        unit,
        actor,
        ACTION,
        ssh_key_id=record.id,
        fingerprint=record.fingerprint_sha256,
        name=audit_summary(issued),
        at=now,
    )
    # A certificate is a use of the key (SPEC 9), kept to the minute.
    await ssh_keys.record_use(unit, actor.owner_id, record.id, now)
    return issued


def _second(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
