"""Migrations build the schema from empty on both engines, and the models match what they build."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from touchline.models import Base
from touchline.schema import is_current, upgrade


def test_upgrade_from_empty_reaches_head(engine: Engine, database_url: str) -> None:
    # The session fixture migrated this database from empty; running again is a no-op.
    upgrade(database_url)
    assert is_current(engine, database_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


def test_models_and_migrations_do_not_drift(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], "models changed without a migration: alembic revision --autogenerate"
