"""API keys get scopes; SSH keys get an expiry and a last-used time.

- `api_keys.scopes`: the key's scopes, space-separated (SPEC 8). Every key that existed
  before gets `ssh-keys` (the server default), which is also what the previous release's
  code gets when it inserts a key without naming the column.
- `ssh_keys.expires_at`, `ssh_keys.last_used_at`: nullable (SPEC 9).
- `audit_events.scopes`: the scopes of the API key an `api_key.*` event is about.

The triggers of 0003 stay as they are: they fire on every UPDATE of `ssh_keys`, so a
change of `expires_at` moves the owner's version (the authorized_keys body changes), and
so does a change of `last_used_at` — the cached list shows `lastUsedAt`, so its body
changes too, and a version that stood still would keep serving the old one (decision
D46). Columns are added with plain ADD COLUMN, never a batch copy of the table: on
SQLite a copy would drop the triggers.

Additive: the previous release's code never names these columns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column(
            "scopes", sa.String(length=128), server_default=sa.text("'ssh-keys'"), nullable=False
        ),
    )
    op.add_column("ssh_keys", sa.Column("expires_at", Timestamp, nullable=True))
    op.add_column("ssh_keys", sa.Column("last_used_at", Timestamp, nullable=True))
    op.add_column("audit_events", sa.Column("scopes", sa.String(length=128), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place, so the triggers survive here too.
    op.drop_column("audit_events", "scopes")
    op.drop_column("ssh_keys", "last_used_at")
    op.drop_column("ssh_keys", "expires_at")
    op.drop_column("api_keys", "scopes")
