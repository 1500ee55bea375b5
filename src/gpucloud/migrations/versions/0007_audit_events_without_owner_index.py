"""The audit table's per-owner index is dropped.

Every write of the API records an audit event in its own transaction, and each index of
audit_events is one more b-tree leaf that the group commit writes out again. The other
entries of an event land on pages that the events of one batch share (its id and its
time both grow), but the (owner_id, at) entry lands on its owner's page: one more page
a write, and with many owners one more distinct page per event in every commit. Its only
reader was the admin CLI's `gpucloud audit --owner`, which now reads the events in time
order and keeps the owner's (docs/decisions.md, D59).

No data change: the previous release's code runs unchanged against either schema.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_events_owner_id_at", table_name="audit_events")


def downgrade() -> None:
    op.create_index("ix_audit_events_owner_id_at", "audit_events", ["owner_id", "at"])
