"""outbound kind: what sort of send an outbound email is, and its unsubscribe link

Revision ID: sending0000008
Revises: sending0000007
Create Date: 2026-12-06 04:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sending0000008"
down_revision: str | None = "sending0000007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_emails") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), nullable=False, server_default="personal"))
        batch.add_column(sa.Column("unsubscribe_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_emails") as batch:
        batch.drop_column("unsubscribe_url")
        batch.drop_column("kind")
