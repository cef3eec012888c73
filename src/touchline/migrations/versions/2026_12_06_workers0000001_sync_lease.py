"""sync lease: the worker holding a mailbox's sync, until when, and whether another run was asked for

Revision ID: workers0000001
Revises: analytics0000001
Create Date: 2026-12-06 10:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "workers0000001"
down_revision: str | None = "analytics0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("sync_holder", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("sync_leased_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sync_requested", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("sync_requested")
        batch.drop_column("sync_leased_until")
        batch.drop_column("sync_holder")
