"""folder health: each synced folder's last error, failures in a row and next retry

Revision ID: sync0000001
Revises: engagement0000002
Create Date: 2026-12-06 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from touchline.models.base import UTCDateTime

revision: str = "sync0000001"
down_revision: str | None = "engagement0000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_folders") as batch:
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_error_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("next_retry_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailbox_folders") as batch:
        batch.drop_column("next_retry_at")
        batch.drop_column("failed_attempts")
        batch.drop_column("last_error_at")
        batch.drop_column("last_error")
