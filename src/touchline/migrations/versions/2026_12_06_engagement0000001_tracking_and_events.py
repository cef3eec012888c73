"""tracking and events: tracked links, engagement events, undeliverable contacts, automatic replies

Revision ID: engagement0000001
Revises: sending0000011
Create Date: 2026-12-06 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from touchline.models.base import UTCDateTime

revision: str = "engagement0000001"
down_revision: str | None = "sending0000011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracked_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("outbound_email_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_tracked_links_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbound_email_id"],
            ["outbound_emails.id"],
            name=op.f("fk_tracked_links_outbound_email_id_outbound_emails"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_links")),
        sa.UniqueConstraint("token", name=op.f("uq_tracked_links_token")),
    )
    op.create_index("ix_tracked_links_outbound", "tracked_links", ["outbound_email_id"])
    op.create_table(
        "engagement_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("outbound_email_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("occurred_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("link_id", sa.Uuid(), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("machine_reason", sa.String(length=300), nullable=True),
        sa.Column("email_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_engagement_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbound_email_id"],
            ["outbound_emails.id"],
            name=op.f("fk_engagement_events_outbound_email_id_outbound_emails"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["tracked_links.id"],
            name=op.f("fk_engagement_events_link_id_tracked_links"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["emails.id"],
            name=op.f("fk_engagement_events_email_id_emails"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_engagement_events_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_events")),
    )
    op.create_index(
        "ix_engagement_events_outbound_at", "engagement_events", ["outbound_email_id", "occurred_at"]
    )
    op.create_index("ix_engagement_events_workspace_at", "engagement_events", ["workspace_id", "occurred_at"])
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("undeliverable_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("undeliverable_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("emails") as batch:
        batch.add_column(sa.Column("automatic", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("emails") as batch:
        batch.drop_column("automatic")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("undeliverable_reason")
        batch.drop_column("undeliverable_at")
    op.drop_index("ix_engagement_events_workspace_at", table_name="engagement_events")
    op.drop_index("ix_engagement_events_outbound_at", table_name="engagement_events")
    op.drop_table("engagement_events")
    op.drop_index("ix_tracked_links_outbound", table_name="tracked_links")
    op.drop_table("tracked_links")
