"""engagement records: one per sent email, tracking switches of the workspace and of bulk sends

Revision ID: engagement0000003
Revises: engagement0000001
Create Date: 2026-12-06 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from touchline.models.base import UTCDateTime

revision: str = "engagement0000003"
down_revision: str | None = "engagement0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _foreign(column: str, table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{table}.id"], name=op.f(f"fk_email_engagements_{column}_{table}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "email_engagements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("outbound_email_id", sa.Uuid(), nullable=False),
        sa.Column("sender_user_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("recipient_address", sa.String(length=320), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=True),
        sa.Column("template_id", sa.Uuid(), nullable=True),
        sa.Column("template_name", sa.String(length=200), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("sequence_id", sa.Uuid(), nullable=True),
        sa.Column("sequence_step", sa.Integer(), nullable=True),
        sa.Column("bulk_id", sa.Uuid(), nullable=True),
        sa.Column("variant", sa.String(length=50), nullable=False),
        sa.Column("track_opens", sa.Boolean(), nullable=False),
        sa.Column("track_clicks", sa.Boolean(), nullable=False),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("open_rate", sa.Integer(), nullable=True),
        sa.Column("click_rate", sa.Integer(), nullable=True),
        sa.Column("reply_rate", sa.Integer(), nullable=False),
        sa.Column("human_open_rate", sa.Integer(), nullable=True),
        sa.Column("human_click_rate", sa.Integer(), nullable=True),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("human_opens", sa.Integer(), nullable=False),
        sa.Column("human_clicks", sa.Integer(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("auto_replies", sa.Integer(), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("bounce", sa.String(length=10), nullable=True),
        sa.Column("first_event_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        _foreign("workspace_id", "workspaces", "CASCADE"),
        _foreign("outbound_email_id", "outbound_emails", "CASCADE"),
        _foreign("sender_user_id", "users", "SET NULL"),
        _foreign("created_by", "users", "SET NULL"),
        _foreign("contact_id", "contacts", "SET NULL"),
        _foreign("company_id", "companies", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_engagements")),
        sa.UniqueConstraint("outbound_email_id", name=op.f("uq_email_engagements_outbound_email_id")),
    )
    op.create_index("ix_email_engagements_workspace_sent", "email_engagements", ["workspace_id", "sent_at"])
    op.create_index("ix_email_engagements_template", "email_engagements", ["workspace_id", "template_id"])
    op.create_index(
        "ix_email_engagements_sequence", "email_engagements", ["workspace_id", "sequence_id", "sequence_step"]
    )
    op.create_index("ix_email_engagements_bulk", "email_engagements", ["bulk_id"])
    with op.batch_alter_table("workspace_settings") as batch:
        batch.add_column(sa.Column("track_opens", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch.add_column(sa.Column("track_clicks", sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table("bulk_sends") as batch:
        batch.add_column(sa.Column("track_opens", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("track_clicks", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulk_sends") as batch:
        batch.drop_column("track_clicks")
        batch.drop_column("track_opens")
    with op.batch_alter_table("workspace_settings") as batch:
        batch.drop_column("track_clicks")
        batch.drop_column("track_opens")
    op.drop_index("ix_email_engagements_bulk", table_name="email_engagements")
    op.drop_index("ix_email_engagements_sequence", table_name="email_engagements")
    op.drop_index("ix_email_engagements_template", table_name="email_engagements")
    op.drop_index("ix_email_engagements_workspace_sent", table_name="email_engagements")
    op.drop_table("email_engagements")
