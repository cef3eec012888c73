"""sending budgets: what each mailbox (and the relay) sent lately, for the providers' rolling limits

Revision ID: sending0000003
Revises: security0000002
Create Date: 2026-12-06 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import touchline.models.base

revision: str = "sending0000003"
down_revision: str | None = "security0000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_budgets",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("mailbox_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_send_budgets_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_send_budgets")),
    )
    with op.batch_alter_table("send_budgets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_send_budgets_mailbox_id"), ["mailbox_id"], unique=False)
    op.create_table(
        "send_budget_entries",
        sa.Column("budget_key", sa.String(length=100), nullable=False),
        sa.Column("reserved_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["budget_key"],
            ["send_budgets.key"],
            name=op.f("fk_send_budget_entries_budget_key_send_budgets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_budget_entries")),
    )
    with op.batch_alter_table("send_budget_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_send_budget_entries_budget_key_reserved_at", ["budget_key", "reserved_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("send_budget_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_send_budget_entries_budget_key_reserved_at")
    op.drop_table("send_budget_entries")
    with op.batch_alter_table("send_budgets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_send_budgets_mailbox_id"))
    op.drop_table("send_budgets")
