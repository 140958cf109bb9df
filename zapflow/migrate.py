"""Run the Alembic migrations from Python: ``zapflow migrate``, the dev stack and the tests.

The functions are synchronous because ``migrations/env.py`` runs its own event loop
(``asyncio.run``): call them from a thread (``await asyncio.to_thread(upgrade, url)``), never
directly from a running event loop.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = REPO_ROOT / "alembic.ini"


def normalize_url(database_url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` too; Alembic runs over asyncpg."""
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+asyncpg://" + database_url[len(prefix) :]
    return database_url


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render column types as plain SQLAlchemy/pgvector types in generated migrations.

    SQLModel's ``AutoString``/``UTCDateTime`` and our non-native ``Enum`` columns are VARCHAR and
    TIMESTAMPTZ in the database; a migration should not import application code to say so.
    """
    if type_ != "type":
        return False
    from pgvector.sqlalchemy import VECTOR
    from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

    if isinstance(obj, sa.Enum) and not obj.native_enum:
        return f"sa.String(length={obj.length})"
    if isinstance(obj, AutoString):
        length = getattr(obj, "length", None)
        return "sa.String()" if length is None else f"sa.String(length={length})"
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, VECTOR):
        # script.py.mako imports pgvector.sqlalchemy
        return f"pgvector.sqlalchemy.Vector({obj.dim})"
    return False


def autogenerate_options() -> dict[str, Any]:
    """``context.configure`` options shared by env.py (autogenerate) and :func:`check`."""
    return {"compare_type": True, "compare_server_default": True, "render_item": render_item}


def alembic_config(database_url: str) -> Config:
    """The repo's alembic.ini, pointed at ``database_url``, leaving the process's logging alone."""
    from alembic.config import Config

    if not ALEMBIC_INI.is_file():
        raise FileNotFoundError(
            f"{ALEMBIC_INI} not found: zapflow must run from a source checkout (pip install -e .)"
        )
    config = Config(str(ALEMBIC_INI))
    # ConfigParser interpolation: a literal "%" (URL-encoded password) must be doubled.
    config.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def _literals(sql: str) -> list[str]:
    """The quoted literals of a CHECK: ``['a', 'b']`` for ``x IN ('a', 'b')`` and for Postgres's
    rendering of it, ``((x)::text = ANY ((ARRAY['a'::character varying, ...])::text[]))``.
    """
    return [value.replace("''", "'") for value in re.findall(r"'((?:[^']|'')*)'", sql)]


def _check_constraint_diffs(connection: Connection, metadata: MetaData) -> list[Any]:
    """Autogenerate ignores CHECK constraints; ours hold the enumerations' values, so compare."""
    rows = connection.execute(
        sa.text(
            "SELECT rel.relname, con.conname, pg_get_constraintdef(con.oid)"
            " FROM pg_constraint con"
            " JOIN pg_class rel ON rel.oid = con.conrelid"
            " JOIN pg_namespace nsp ON nsp.oid = rel.relnamespace"
            " WHERE con.contype = 'c' AND nsp.nspname = current_schema()"
        )
    ).all()
    in_database = {(table, name): definition for table, name, definition in rows}
    diffs: list[Any] = []
    for table in metadata.sorted_tables:
        in_models = {
            str(constraint.name): str(constraint.sqltext)
            for constraint in table.constraints
            if isinstance(constraint, sa.CheckConstraint)
        }
        for name, sql in in_models.items():
            definition = in_database.get((table.name, name))
            if definition is None:
                diffs.append(("add_check_constraint", table.name, name, sql))
            elif sorted(_literals(definition)) != sorted(_literals(sql)):
                diffs.append(("modify_check_constraint", table.name, name, definition, sql))
        for (table_name, name), definition in in_database.items():
            if table_name == table.name and name not in in_models:
                diffs.append(("remove_check_constraint", table.name, name, definition))
    return diffs


def _compare(connection: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import zapflow.models  # noqa: F401  (registers every table)

    context = MigrationContext.configure(connection, opts=autogenerate_options())
    diffs = list(compare_metadata(context, SQLModel.metadata))
    return diffs + _check_constraint_diffs(connection, SQLModel.metadata)


def check(database_url: str) -> list[Any]:
    """Autogenerate's diff between the models and the database: empty when they agree.

    Besides what ``alembic check`` sees, CHECK constraints are compared by their literals
    (``("modify_check_constraint", table, name, in_database, in_models)`` and add/remove entries),
    since they hold the enumerations' values and autogenerate ignores them.
    """

    async def run() -> list[Any]:
        engine = create_async_engine(normalize_url(database_url), poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(_compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())
