"""bulk cohort: a bulk send to exactly the endusers of an analytics cohort

Revision ID: analytics0000001
Revises: analytics0000002
Create Date: 2026-12-06 08:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "analytics0000001"
down_revision: str | None = "analytics0000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bulk_sends", sa.Column("contact_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("bulk_sends", "contact_ids")
