"""sync counts: what a mailbox's syncs have checked, kept and quarantined since it was connected,
added to with every stored batch

Revision ID: demo00000001
Revises: analytics0000003
Create Date: 2026-12-06 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from touchline.models.base import UTCDateTime

revision: str = "demo00000001"
down_revision: str | None = "people0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("sync_checked", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("sync_kept", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("sync_quarantined", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("sync_counted_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("sync_counted_at")
        batch.drop_column("sync_quarantined")
        batch.drop_column("sync_kept")
        batch.drop_column("sync_checked")
