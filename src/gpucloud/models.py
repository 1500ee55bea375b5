"""Every table, imported in one place so that Alembic and tests see the whole schema."""

from __future__ import annotations

from gpucloud.api_keys.models import APIKey
from gpucloud.audit.models import AuditEvent
from gpucloud.db import Base
from gpucloud.idempotency.models import IdempotencyKey
from gpucloud.owners.models import Owner
from gpucloud.ssh_keys.models import SSHKey

metadata = Base.metadata

__all__ = ["APIKey", "AuditEvent", "IdempotencyKey", "Owner", "SSHKey", "metadata"]
