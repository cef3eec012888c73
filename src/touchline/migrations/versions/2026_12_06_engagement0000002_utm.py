"""utm: UTM parameters of templates and of outbound emails

Revision ID: engagement0000002
Revises: engagement0000004
Create Date: 2026-12-06 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "engagement0000002"
down_revision: str | None = "engagement0000004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("templates", sa.Column("utm", sa.JSON(), nullable=True))
    op.add_column("outbound_emails", sa.Column("utm", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbound_emails", "utm")
    op.drop_column("templates", "utm")
