"""engagement events without the (workspace, time) index: no query reads events that way (every
read names the sent email, which its own index serves), and each tracking hit paid for one more
index entry in its commit

Revision ID: engagement0000005
Revises: demo00000001
Create Date: 2026-12-06 21:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "engagement0000005"
down_revision: str | None = "demo00000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_engagement_events_workspace_at", table_name="engagement_events")


def downgrade() -> None:
    op.create_index("ix_engagement_events_workspace_at", "engagement_events", ["workspace_id", "occurred_at"])
