"""bulk sends: what a bulk send asked for and how queueing went, and whom it skipped and why

Revision ID: sending0000009
Revises: sending0000008
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import touchline.models.base

revision: str = "sending0000009"
down_revision: str | None = "sending0000008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bulk_sends",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("sender_choice", sa.String(length=320), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=True),
        sa.Column("template_name", sa.String(length=200), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("queued_at", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_bulk_sends_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_bulk_sends_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_bulk_sends_template_id_templates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_sends")),
    )
    op.create_index("ix_bulk_sends_workspace_created", "bulk_sends", ["workspace_id", "created_at"])
    op.create_table(
        "bulk_skips",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("bulk_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_bulk_skips_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["bulk_id"], ["bulk_sends.id"], name=op.f("fk_bulk_skips_bulk_id_bulk_sends"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_bulk_skips_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_skips")),
        sa.UniqueConstraint("bulk_id", "contact_id", name=op.f("uq_bulk_skips_bulk_id_contact_id")),
    )
    op.create_index(op.f("ix_bulk_skips_bulk_id"), "bulk_skips", ["bulk_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_bulk_skips_bulk_id"), table_name="bulk_skips")
    op.drop_table("bulk_skips")
    op.drop_index("ix_bulk_sends_workspace_created", table_name="bulk_sends")
    op.drop_table("bulk_sends")
