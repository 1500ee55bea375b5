"""Two indexes of ssh_keys that only rare reads used are dropped.

Every create writes one entry into each index of ssh_keys, and every index entry is a
b-tree page that the commit writes out again: with seven b-trees a create dirtied about
nine pages. The listing-order index (owner_id, created_at, id) served only a read that
is made once per change of the owner's keys (lists and authorized_keys files are cached
by the owner's version), and the MD5 index (owner_id, fingerprint_md5) served only the
list's filter by MD5 fingerprint (logins look keys up by SHA-256). Both reads now go
through an index that leads with owner_id, over that owner's keys, whose number the
per-owner limit bounds (docs/decisions.md, D58).

No data change: the previous release's code runs unchanged against either schema.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_ssh_keys_owner_id_created_at_id", table_name="ssh_keys")
    op.drop_index("ix_ssh_keys_owner_id_fingerprint_md5", table_name="ssh_keys")


def downgrade() -> None:
    op.create_index(
        "ix_ssh_keys_owner_id_fingerprint_md5", "ssh_keys", ["owner_id", "fingerprint_md5"]
    )
    op.create_index(
        "ix_ssh_keys_owner_id_created_at_id", "ssh_keys", ["owner_id", "created_at", "id"]
    )
