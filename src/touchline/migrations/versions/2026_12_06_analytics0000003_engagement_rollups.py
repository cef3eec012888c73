"""engagement rollups: the sums of the Email Engagement records per UTC day and month, per creator,
sender and grouping dimension, kept current with the records; filled here from the existing records

Revision ID: analytics0000003
Revises: robust0000001
Create Date: 2026-12-06 10:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "analytics0000003"
down_revision: str | None = "robust0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = (
    ("sent", "count(*)"),
    ("open_tracked", "count(open_rate)"),
    ("opened", "coalesce(sum(open_rate), 0) / 100"),
    ("human_open_known", "count(human_open_rate)"),
    ("human_opened", "coalesce(sum(human_open_rate), 0) / 100"),
    ("click_tracked", "count(click_rate)"),
    ("clicked", "coalesce(sum(click_rate), 0) / 100"),
    ("human_click_known", "count(human_click_rate)"),
    ("human_clicked", "coalesce(sum(human_click_rate), 0) / 100"),
    ("replied", "coalesce(sum(reply_rate), 0) / 100"),
    ("bounced", "count(bounce)"),
)


def _backfill() -> None:
    """One INSERT ... SELECT ... GROUP BY per (dimension, grain), in SQL both databases run."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        none = "CAST('00000000-0000-0000-0000-000000000000' AS uuid)"
        utc = "(sent_at AT TIME ZONE 'UTC')"
        periods = {"day": f"CAST({utc} AS date)", "month": f"CAST(date_trunc('month', {utc}) AS date)"}
    else:
        none = "'" + "0" * 32 + "'"  # a UUID as SQLite keeps it: 32 hex digits
        periods = {"day": "date(sent_at)", "month": "strftime('%Y-%m-01', sent_at)"}
    keys = {
        "total": (none, "-1", "''"),
        "template": (f"coalesce(template_id, {none})", "-1", "''"),
        "sequence": (f"coalesce(sequence_id, {none})", "-1", "''"),
        "step": (f"coalesce(sequence_id, {none})", "coalesce(sequence_step, -1)", "''"),
        "variant": (none, "-1", "coalesce(variant, '')"),
    }
    for dimension, (key_id, key_step, key_text) in keys.items():
        for grain, period in periods.items():
            grouped = [
                "workspace_id",
                period,
                f"coalesce(created_by, {none})",
                f"coalesce(sender_user_id, {none})",
                key_id,
                key_step,
                key_text,
            ]
            # Grouped by what varies (a number there would name a column); built from the
            # constants above only: no value from outside reaches the statement.
            op.execute(
                "INSERT INTO engagement_rollups (workspace_id, dimension, grain, period_start,"  # noqa: S608
                " created_by, sender_user_id, key_id, key_step, key_text, "
                + ", ".join(name for name, _ in COUNTS)
                + ", last_sent_at, template_name) SELECT workspace_id, "
                + f"'{dimension}', '{grain}', "
                + ", ".join(grouped[1:])
                + ", "
                + ", ".join(expression for _, expression in COUNTS)
                + ", max(sent_at), max(template_name) FROM email_engagements GROUP BY "
                + ", ".join(part for part in grouped if part not in (none, "-1", "''"))
            )


def upgrade() -> None:
    op.create_table(
        "engagement_rollups",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("dimension", sa.String(length=10), nullable=False),
        sa.Column("grain", sa.String(length=5), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("sender_user_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("key_step", sa.Integer(), nullable=False),
        sa.Column("key_text", sa.String(length=50), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name, _ in COUNTS),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("template_name", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_engagement_rollups_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id",
            "dimension",
            "grain",
            "period_start",
            "created_by",
            "sender_user_id",
            "key_id",
            "key_step",
            "key_text",
            name=op.f("pk_engagement_rollups"),
        ),
    )
    _backfill()


def downgrade() -> None:
    op.drop_table("engagement_rollups")
