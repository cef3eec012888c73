"""experiments: A/B tests of template variants on a bulk send or a sequence step, and their decisions

Revision ID: analytics0000002
Revises: sync0000001
Create Date: 2026-12-06 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import touchline.models.base

revision: str = "analytics0000002"
down_revision: str | None = "sync0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("bulk_id", sa.Uuid(), nullable=True),
        sa.Column("sequence_id", sa.Uuid(), nullable=True),
        sa.Column("sequence_step", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("min_sample", sa.Integer(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("test_share", sa.Float(), nullable=True),
        sa.Column("ends_at", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("winner", sa.String(length=50), nullable=True),
        sa.Column("decided_at", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=10), nullable=True),
        sa.Column("decided_by_user", sa.Uuid(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_experiments_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_experiments_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["bulk_id"], ["bulk_sends.id"], name=op.f("fk_experiments_bulk_id_bulk_sends"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sequence_id"],
            ["sequences.id"],
            name=op.f("fk_experiments_sequence_id_sequences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_user"],
            ["users.id"],
            name=op.f("fk_experiments_decided_by_user_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index("ix_experiments_workspace_created", "experiments", ["workspace_id", "created_at"])
    op.create_index("ix_experiments_state", "experiments", ["state"])


def downgrade() -> None:
    op.drop_index("ix_experiments_state", table_name="experiments")
    op.drop_index("ix_experiments_workspace_created", table_name="experiments")
    op.drop_table("experiments")
