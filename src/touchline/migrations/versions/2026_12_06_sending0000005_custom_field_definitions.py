"""custom fields: per-workspace definitions giving each company or contact custom field a type

Revision ID: sending0000005
Revises: sending0000004
Create Date: 2026-12-06 02:00:00.000000

Values stay in the companies' and contacts' custom_fields JSON; a definition names a key's label
and type, so imports, the API, templates and recipient filters read typed values.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import touchline.models.base

revision: str = "sending0000005"
down_revision: str | None = "sending0000004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "custom_field_definitions",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", touchline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_custom_field_definitions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_field_definitions")),
        sa.UniqueConstraint(
            "workspace_id", "kind", "key", name=op.f("uq_custom_field_definitions_workspace_id_kind_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("custom_field_definitions")
