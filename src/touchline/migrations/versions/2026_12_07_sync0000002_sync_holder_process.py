"""sync holder process: which process holds a mailbox's sync lease, so a gone one is taken over at once

Revision ID: sync0000002
Revises: engagement0000005
Create Date: 2026-12-07 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sync0000002"
down_revision: str | None = "engagement0000005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A lease held before this revision names no process: it runs out as before.
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("sync_holder_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("sync_holder_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sync_holder_started", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("sync_holder_started")
        batch.drop_column("sync_holder_pid")
        batch.drop_column("sync_holder_host")
