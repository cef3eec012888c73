"""page logins recorded in the database, and throttles

Revision ID: security0000001
Revises: inbound0000002
Create Date: 2026-12-06 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import touchline.models.base

revision: str = "security0000001"
down_revision: str | None = "inbound0000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("id_digest", sa.String(length=64), nullable=False),
        sa.Column("last_seen_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("id_digest", name=op.f("uq_user_sessions_id_digest")),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_sessions_user_id"), ["user_id"], unique=False)
    op.create_table(
        "throttles",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_throttles")),
    )


def downgrade() -> None:
    op.drop_table("throttles")
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_sessions_user_id"))
    op.drop_table("user_sessions")
