"""log address: mail must be authenticated for its From domain; admins may relax it per domain

Revision ID: security0000002
Revises: security0000001
Create Date: 2026-12-06 01:45:00.000000

Every workspace now requires authentication (the old opt-in DKIM switch is dropped); nothing is
relaxed to begin with, whatever the switch said.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "security0000002"
down_revision: str | None = "security0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspace_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unauthenticated_sender_domains", sa.JSON(), server_default="[]", nullable=False)
        )
        batch_op.drop_column("require_dkim_for_logged_mail")


def downgrade() -> None:
    with op.batch_alter_table("workspace_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("require_dkim_for_logged_mail", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.drop_column("unauthenticated_sender_domains")
