"""Every table, imported in one place so that Alembic and tests see the whole schema."""

from __future__ import annotations

from gpucloud.api_keys.models import api_keys
from gpucloud.audit.models import audit_events
from gpucloud.db import metadata
from gpucloud.idempotency.models import idempotency_keys
from gpucloud.owners.models import owners
from gpucloud.ssh_keys.models import ssh_keys

__all__ = ["api_keys", "audit_events", "idempotency_keys", "metadata", "owners", "ssh_keys"]
