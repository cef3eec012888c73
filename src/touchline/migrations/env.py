"""Alembic environment: the URL comes from the caller's config or from touchline's settings."""

from __future__ import annotations

from alembic import context

from touchline.config import Settings
from touchline.db import make_engine
from touchline.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    settings = Settings()
    settings.ensure_data_dir()
    url = settings.resolved_database_url
engine = make_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
