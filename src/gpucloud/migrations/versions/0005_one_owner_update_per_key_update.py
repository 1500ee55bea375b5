"""An update of an SSH key that stays with its owner moves the owner's version once.

0003's update trigger counted every updated row out of its old owner and into its new
one: two UPDATEs of `owners` for each updated key, even when the owner did not change —
which is every update the API makes (a rename, a new default, an expiry, a use). Now
such an update makes one UPDATE of `owners` (the version moves, the count stays), and
only an update that moves a key to another owner does both. Same results, half the
trigger work: a makedefault updates two keys, so four UPDATEs of `owners` become two.

No schema change: the previous release's code runs unchanged against either version of
the triggers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_0003_UPDATE = """
    CREATE TRIGGER ssh_keys_after_update AFTER UPDATE ON ssh_keys BEGIN
        UPDATE owners SET version = version + 1, key_count = key_count - 1
        WHERE id = OLD.owner_id;
        UPDATE owners SET version = version + 1, key_count = key_count + 1
        WHERE id = NEW.owner_id;
    END
"""
_SQLITE_UPDATES = (
    """
    CREATE TRIGGER ssh_keys_after_update AFTER UPDATE ON ssh_keys
    WHEN NEW.owner_id IS OLD.owner_id BEGIN
        UPDATE owners SET version = version + 1 WHERE id = NEW.owner_id;
    END
    """,
    """
    CREATE TRIGGER ssh_keys_after_move AFTER UPDATE ON ssh_keys
    WHEN NEW.owner_id IS NOT OLD.owner_id BEGIN
        UPDATE owners SET version = version + 1, key_count = key_count - 1
        WHERE id = OLD.owner_id;
        UPDATE owners SET version = version + 1, key_count = key_count + 1
        WHERE id = NEW.owner_id;
    END
    """,
)


_POSTGRES_0003 = """
    CREATE OR REPLACE FUNCTION ssh_keys_track_owner() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""
_POSTGRES = """
    CREATE OR REPLACE FUNCTION ssh_keys_track_owner() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.owner_id = OLD.owner_id THEN
            UPDATE owners SET version = version + 1 WHERE id = NEW.owner_id;
            RETURN NULL;
        END IF;
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
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER ssh_keys_after_update")
        for statement in _SQLITE_UPDATES:
            op.execute(statement)
    else:
        op.execute(_POSTGRES)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER ssh_keys_after_move")
        op.execute("DROP TRIGGER ssh_keys_after_update")
        op.execute(_SQLITE_0003_UPDATE)
    else:
        op.execute(_POSTGRES_0003)
