"""pending jobs: the outbox that keeps a job asked for in a committed transaction until it is queued

Revision ID: robust0000001
Revises: workers0000001
Create Date: 2026-12-06 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "robust0000001"
down_revision: str | None = "workers0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_jobs",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kwargs", sa.JSON(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_jobs")),
    )
    with op.batch_alter_table("pending_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pending_jobs_claimed_created", ["claimed_until", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pending_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_pending_jobs_claimed_created")
    op.drop_table("pending_jobs")
