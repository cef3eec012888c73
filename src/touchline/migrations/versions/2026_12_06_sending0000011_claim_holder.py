"""claim holder: which process holds an outbound email's claim, and when it was handed over

Revision ID: sending0000011
Revises: sending0000010
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from touchline.models.base import UTCDateTime

revision: str = "sending0000011"
down_revision: str | None = "sending0000010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_emails") as batch:
        batch.add_column(sa.Column("claim_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("claim_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("claim_started", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("claim_abandoned_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("handed_over_at", UTCDateTime(timezone=True), nullable=True))
    # An email claimed before this revision may have been handed over: nothing recorded otherwise,
    # so it is taken as handed over, and a copy not found in Sent leaves it `unknown`, not re-sent.
    op.execute("UPDATE outbound_emails SET handed_over_at = claimed_at WHERE status = 'sending'")


def downgrade() -> None:
    with op.batch_alter_table("outbound_emails") as batch:
        batch.drop_column("handed_over_at")
        batch.drop_column("claim_abandoned_at")
        batch.drop_column("claim_started")
        batch.drop_column("claim_pid")
        batch.drop_column("claim_host")
