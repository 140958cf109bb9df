"""Alembic environment: async (asyncpg) migrations of ``SQLModel.metadata`` (zapflow.models).

The URL is ``sqlalchemy.url`` when a caller set it on the Config (zapflow.migrate does), otherwise
``ZAPFLOW_DATABASE_URL`` through zapflow.config. Comparison options are shared with
``zapflow.migrate.check`` so ``alembic revision --autogenerate`` and the schema test agree.
"""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import zapflow.models  # noqa: F401  (registers every table on SQLModel.metadata)
from zapflow.config import get_settings
from zapflow.migrate import autogenerate_options, normalize_url

config = context.config

# The `alembic` command line gets the ini's logging; programmatic callers keep their own.
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def database_url() -> str:
    return normalize_url(config.get_main_option("sqlalchemy.url") or get_settings().database_url)


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``) instead of running it."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **autogenerate_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        **autogenerate_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
