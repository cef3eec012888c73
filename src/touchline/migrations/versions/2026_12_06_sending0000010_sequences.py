"""sequences: playbooks of template steps, enrolments (one running per enduser and sequence) and step runs

Revision ID: sending0000010
Revises: sending0000009
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import touchline.models.base

revision: str = "sending0000010"
down_revision: str | None = "sending0000009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = "state IN ('active', 'paused')"


def upgrade() -> None:
    op.create_table(
        "sequences",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("exit_on_reply", sa.Boolean(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.Time(), nullable=False),
        sa.Column("window_end", sa.Time(), nullable=False),
        sa.Column("business_days_only", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("updated_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_sequences_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_sequences_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequences")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_sequences_workspace_id_name")),
    )
    op.create_table(
        "sequence_steps",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("delay_days", sa.Integer(), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_sequence_steps_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sequence_id"],
            ["sequences.id"],
            name=op.f("fk_sequence_steps_sequence_id_sequences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_sequence_steps_template_id_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_steps")),
        sa.UniqueConstraint("sequence_id", "position", name=op.f("uq_sequence_steps_sequence_id_position")),
    )
    op.create_index(op.f("ix_sequence_steps_template_id"), "sequence_steps", ["template_id"], unique=False)
    op.create_table(
        "sequence_enrolments",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("sequence_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("current_step", sa.Integer(), nullable=False),
        sa.Column("next_due_at", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_step_at", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("enrolled_by", sa.Uuid(), nullable=True),
        sa.Column("enrolled_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", touchline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_sequence_enrolments_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sequence_id"],
            ["sequences.id"],
            name=op.f("fk_sequence_enrolments_sequence_id_sequences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_sequence_enrolments_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enrolled_by"],
            ["users.id"],
            name=op.f("fk_sequence_enrolments_enrolled_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_enrolments")),
    )
    op.create_index(
        "uq_sequence_enrolments_running",
        "sequence_enrolments",
        ["sequence_id", "contact_id"],
        unique=True,
        sqlite_where=sa.text(RUNNING),
        postgresql_where=sa.text(RUNNING),
    )
    op.create_index("ix_sequence_enrolments_due", "sequence_enrolments", ["state", "next_due_at"])
    op.create_index("ix_sequence_enrolments_sequence", "sequence_enrolments", ["sequence_id", "state"])
    op.create_index(
        op.f("ix_sequence_enrolments_contact_id"), "sequence_enrolments", ["contact_id"], unique=False
    )
    op.create_table(
        "sequence_step_runs",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("enrolment_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("outbound_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("ran_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_sequence_step_runs_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enrolment_id"],
            ["sequence_enrolments.id"],
            name=op.f("fk_sequence_step_runs_enrolment_id_sequence_enrolments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["sequence_steps.id"],
            name=op.f("fk_sequence_step_runs_step_id_sequence_steps"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["outbound_emails.id"],
            name=op.f("fk_sequence_step_runs_outbound_id_outbound_emails"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_step_runs")),
        sa.UniqueConstraint(
            "enrolment_id", "position", name=op.f("uq_sequence_step_runs_enrolment_id_position")
        ),
    )
    op.create_index(
        op.f("ix_sequence_step_runs_outbound_id"), "sequence_step_runs", ["outbound_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sequence_step_runs_outbound_id"), table_name="sequence_step_runs")
    op.drop_table("sequence_step_runs")
    op.drop_index(op.f("ix_sequence_enrolments_contact_id"), table_name="sequence_enrolments")
    op.drop_index("ix_sequence_enrolments_sequence", table_name="sequence_enrolments")
    op.drop_index("ix_sequence_enrolments_due", table_name="sequence_enrolments")
    op.drop_index("uq_sequence_enrolments_running", table_name="sequence_enrolments")
    op.drop_table("sequence_enrolments")
    op.drop_index(op.f("ix_sequence_steps_template_id"), table_name="sequence_steps")
    op.drop_table("sequence_steps")
    op.drop_table("sequences")
