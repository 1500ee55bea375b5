"""Owners get a version and a key count, kept by triggers on ssh_keys.

`owners.version` moves on every insert, update or delete of one of the owner's SSH
keys, and `owners.key_count` stays equal to the number of its keys, in the same
transaction as the change, whatever code (or operator) made it. Cached answers are
validated by the version; the per-owner limit reads the count instead of counting rows.

Additive: the previous release's code never names these columns, and its writes fire
the triggers like any other.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A row leaving an owner counts down and a row arriving counts up, so an UPDATE (even one
# that moved a key to another owner) is one of each.
_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER ssh_keys_after_insert AFTER INSERT ON ssh_keys BEGIN
        UPDATE owners SET version = version + 1, key_count = key_count + 1
        WHERE id = NEW.owner_id;
    END
    """,
    """
    CREATE TRIGGER ssh_keys_after_update AFTER UPDATE ON ssh_keys BEGIN
        UPDATE owners SET version = version + 1, key_count = key_count - 1
        WHERE id = OLD.owner_id;
        UPDATE owners SET version = version + 1, key_count = key_count + 1
        WHERE id = NEW.owner_id;
    END
    """,
    """
    CREATE TRIGGER ssh_keys_after_delete AFTER DELETE ON ssh_keys BEGIN
        UPDATE owners SET version = version + 1, key_count = key_count - 1
        WHERE id = OLD.owner_id;
    END
    """,
)
_POSTGRES_TRIGGERS = (
    """
    CREATE FUNCTION ssh_keys_track_owner() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE owners SET version = version + 1, key_count = key_count - 1
            WHERE id = OLD.owner_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            UPDATE owners SET version = version + 1, key_count = key_count + 1
            WHERE id = NEW.owner_id;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER ssh_keys_track_owner AFTER INSERT OR UPDATE OR DELETE ON ssh_keys
    FOR EACH ROW EXECUTE FUNCTION ssh_keys_track_owner()
    """,
)


def upgrade() -> None:
    with op.batch_alter_table("owners") as batch:
        batch.add_column(
            sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("key_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
    op.execute(
        "UPDATE owners SET key_count = "
        "(SELECT count(*) FROM ssh_keys WHERE ssh_keys.owner_id = owners.id)"
    )
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE_TRIGGERS if dialect == "sqlite" else _POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("ssh_keys_after_insert", "ssh_keys_after_update", "ssh_keys_after_delete"):
            op.execute(f"DROP TRIGGER {name}")
    else:
        op.execute("DROP TRIGGER ssh_keys_track_owner ON ssh_keys")
        op.execute("DROP FUNCTION ssh_keys_track_owner()")
    with op.batch_alter_table("owners") as batch:
        batch.drop_column("key_count")
        batch.drop_column("version")
