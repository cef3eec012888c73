"""workspace time zone: the zone a workspace types and reads times in, and its sequences' default

Revision ID: sending0000012
Revises: sync0000002
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sending0000012"
down_revision: str | None = "sync0000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # UTC is what every page showed before: nothing moves until an admin chooses a zone.
    with op.batch_alter_table("workspace_settings") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("workspace_settings") as batch:
        batch.drop_column("time_zone")
