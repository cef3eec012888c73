"""log address spool

Revision ID: inbound0000002
Revises: inbound0000001
Create Date: 2026-11-25 18:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import touchline.models.base

revision: str = "inbound0000002"
down_revision: str | None = "inbound0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_spool",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("envelope_sender", sa.String(length=320), nullable=True),
        sa.Column("remote", sa.String(length=100), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("dkim", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_inbound_spool_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_spool")),
    )
    with op.batch_alter_table("inbound_spool", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_spool_claimed_created", ["claimed_until", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_spool", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_spool_claimed_created")
    op.drop_table("inbound_spool")
