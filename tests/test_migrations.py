"""The Alembic migrations against a real Postgres: they build exactly the models' schema, with
every index the seed named, and they undo cleanly.

``make_database`` (tests/conftest.py) gives the URL of a new empty database on the embedded server.
The Alembic calls are synchronous (env.py runs its own event loop), hence ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import zapflow.models  # noqa: F401  (registers every table)
from zapflow.migrate import check, downgrade, upgrade

MakeDatabase = Callable[[str], Awaitable[str]]

# the seed's indexes, by the names it gave them (the vector one is HNSW here, not ivfflat)
SEED_INDEXES = {
    "idx_contacts_company_id",
    "idx_contacts_phone",
    "idx_contacts_company_phone",
    "idx_contacts_created_at",
    "idx_conversations_company_id",
    "idx_conversations_instance_id",
    "idx_conversations_remote_jid",
    "idx_conversations_last_message",
    "idx_conversations_is_paused",
    "idx_messages_conversation_id",
    "idx_messages_created_at",
    "idx_messages_key_id",
    "idx_deals_company_id",
    "idx_deals_stage_id",
    "idx_deals_contact_id",
    "idx_deals_status",
    "idx_deals_company_status",
    "idx_followup_queue_status",
    "idx_followup_queue_scheduled",
    "idx_embeddings_vector",
}
# what the list and search routes rely on
ROUTE_INDEXES = {
    "idx_conversations_company_last_message",
    "idx_messages_conversation_created",
    "idx_messages_body_fts",
    "idx_contacts_name_trgm",
    "idx_contacts_company_email",
    "idx_contacts_tags",
    "idx_inbox_events_pending",
}


async def _fetch(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(sa.text(sql), params)).all())
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _indexes(url: str) -> dict[str, str]:
    rows = await _fetch(
        url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    )
    return {name: definition for name, definition in rows}


async def _tables(url: str) -> set[str]:
    rows = await _fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {name for (name,) in rows}


@pytest.fixture(scope="module")
async def migrated(make_database: MakeDatabase) -> AsyncIterator[str]:
    """A database upgraded to head, shared by the read-only tests of this module."""
    url = await make_database("zapflow_migrations_head")
    await asyncio.to_thread(upgrade, url)
    yield url


async def test_upgrade_head_matches_the_models(migrated: str) -> None:
    assert await asyncio.to_thread(check, migrated) == []
    assert set(SQLModel.metadata.tables) <= await _tables(migrated)


async def test_seed_and_route_indexes_exist(migrated: str) -> None:
    indexes = await _indexes(migrated)
    assert SEED_INDEXES - indexes.keys() == set()
    assert ROUTE_INDEXES - indexes.keys() == set()
    assert "WHERE (is_paused = true)" in indexes["idx_conversations_is_paused"]
    assert "WHERE ((status)::text = 'PENDING'::text)" in indexes["idx_followup_queue_scheduled"]
    assert "USING gin" in indexes["idx_messages_body_fts"]
    assert "gin_trgm_ops" in indexes["idx_contacts_name_trgm"]


async def test_vector_index_is_hnsw_with_cosine_ops(migrated: str) -> None:
    rows = await _fetch(
        migrated,
        "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
        " WHERE c.relname = :name",
        name="idx_embeddings_vector",
    )
    assert rows == [("hnsw",)]
    assert "vector_cosine_ops" in (await _indexes(migrated))["idx_embeddings_vector"]


async def test_check_reports_drift(make_database: MakeDatabase) -> None:
    url = await make_database("zapflow_migrations_drift")
    await asyncio.to_thread(upgrade, url)
    await _execute(
        url,
        "DROP INDEX idx_contacts_tags",
        "ALTER TABLE messages DROP CONSTRAINT ck_messages_status",
        "ALTER TABLE messages ADD CONSTRAINT ck_messages_status CHECK (status IN ('sent'))",
    )
    diffs = await asyncio.to_thread(check, url)
    kinds = {(diff[0], getattr(diff[1], "name", diff[1])) for diff in diffs}
    assert ("add_index", "idx_contacts_tags") in kinds
    assert ("modify_check_constraint", "messages") in kinds


async def test_downgrade_to_base_then_upgrade_again(make_database: MakeDatabase) -> None:
    url = await make_database("zapflow_migrations_roundtrip")
    await asyncio.to_thread(upgrade, url)

    await asyncio.to_thread(downgrade, url)
    assert await _tables(url) <= {"alembic_version"}
    assert await _fetch(url, "SELECT version_num FROM alembic_version") == []
    extensions = {name for (name,) in await _fetch(url, "SELECT extname FROM pg_extension")}
    assert extensions.isdisjoint({"vector", "pg_trgm"})

    await asyncio.to_thread(upgrade, url)
    assert set(SQLModel.metadata.tables) <= await _tables(url)
    assert await asyncio.to_thread(check, url) == []


async def test_contact_identities_are_backfilled_from_todays_contacts(
    make_database: MakeDatabase,
) -> None:
    """Phones, lids and aliases of contacts stored before the identities become identities;
    where two contacts share an alias, the older keeps it (the other is a duplicate to merge)."""
    url = await make_database("zapflow_migrations_identities")
    await asyncio.to_thread(upgrade, url, "5d7f2a9c1e48")
    company = "00000000-0000-0000-0000-0000000000c1"
    await _execute(
        url,
        f"INSERT INTO companies (id, name) VALUES ('{company}', 'Acme')",
        "INSERT INTO contacts (id, company_id, phone_number, lid, aliases, created_at) VALUES"
        f" ('00000000-0000-0000-0000-000000000001', '{company}', '+5511987654321',"
        """  '207@lid', '["5511987654321@s.whatsapp.net", "BR.15@bsuid"]',"""
        "  now() - interval '1 day'),"
        f" ('00000000-0000-0000-0000-000000000002', '{company}', NULL, NULL,"
        """  '["BR.99@bsuid", "BR.15@bsuid", "120363@g.us"]', now())""",
    )
    await asyncio.to_thread(upgrade, url)
    rows = await _fetch(
        url,
        "SELECT right(contact_id::text, 1), kind, value FROM contact_identities ORDER BY 1, 2, 3",
    )
    assert [tuple(row) for row in rows] == [
        ("1", "bsuid", "BR.15"),
        ("1", "jid", "5511987654321@s.whatsapp.net"),
        ("1", "lid", "207@lid"),
        ("1", "phone", "+5511987654321"),
        ("2", "bsuid", "BR.99"),
        ("2", "jid", "120363@g.us"),
    ]
    # the trigger keeps phone identities in step with the column from now on
    await _execute(
        url,
        "UPDATE contacts SET phone_number = '+5511900000000'"
        " WHERE id = '00000000-0000-0000-0000-000000000001'",
    )
    phones = await _fetch(url, "SELECT value FROM contact_identities WHERE kind = 'phone'")
    assert [value for (value,) in phones] == ["+5511900000000"]
