"""``zapflow seed-demo``: consistent rows, valid enumerations, tenants kept apart, a working CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from zapflow.config import Settings
from zapflow.db import create_engine
from zapflow.errors import NotFound
from zapflow.models import (
    ConversationStatus,
    DealStatus,
    MessageDirection,
    MessageSender,
    MessageStatus,
    MessageType,
)
from zapflow.seed import FUNNELS, TAGS, SeedOptions, SeedResult, seed_demo

pytestmark = pytest.mark.timeout(120)


@dataclass
class Seeded:
    a: SeedResult  # 200 contacts, 2,000 messages, seed 42
    b: SeedResult  # 150 contacts with two conversations each, 1,000 messages, seed 7


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def seeded(engine: AsyncEngine) -> Seeded:
    a = await seed_demo(engine, SeedOptions(contacts=200, messages=2_000, company_name="Seed A"))
    b = await seed_demo(
        engine,
        SeedOptions(
            contacts=150,
            messages=1_000,
            company_name="Seed B",
            conversations_per_contact=2,
            seed=7,
        ),
    )
    return Seeded(a, b)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(text(sql), params))


async def value(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    found = await rows(engine, sql, **params)
    return found[0][0]


async def count(engine: AsyncEngine, table: str, company: uuid.UUID) -> int:
    return int(
        await value(engine, f"SELECT count(*) FROM {table} WHERE company_id = :c", c=company)
    )


async def test_rows_as_asked(engine: AsyncEngine, seeded: Seeded) -> None:
    a, b = seeded.a, seeded.b
    assert (a.contacts, a.conversations, a.messages) == (200, 200, 2_000)
    assert (b.contacts, b.conversations, b.messages) == (150, 300, 1_000)
    for result in (a, b):
        company = result.company_id
        assert await count(engine, "contacts", company) == result.contacts
        assert await count(engine, "conversations", company) == result.conversations
        assert await count(engine, "messages", company) == result.messages
        assert await count(engine, "deals", company) == result.deals
        assert result.contacts * 0.03 <= result.deals <= result.contacts * 0.2
        assert await count(engine, "users", company) == 6
        providers = await rows(
            engine, "SELECT provider FROM whatsapp_instances WHERE company_id = :c", c=company
        )
        assert sorted(p for (p,) in providers) == ["cloud", "evolution"]
        stages = await rows(
            engine,
            "SELECT f.name, s.name FROM funnels f JOIN stages s ON s.funnel_id = f.id"
            " WHERE f.company_id = :c ORDER BY f.name, s.position",
            c=company,
        )
        expected = sorted(
            ((name, stage) for name, (_, spec) in FUNNELS.items() for stage, _, _ in spec),
            key=lambda pair: pair[0],
        )
        assert [tuple(row) for row in stages] == expected
    # two conversations per contact: one per instance
    per_instance = await rows(
        engine,
        "SELECT count(DISTINCT instance_id), count(*) FROM conversations"
        " WHERE company_id = :c GROUP BY contact_id",
        c=b.company_id,
    )
    assert {tuple(row) for row in per_instance} == {(2, 2)}


async def test_conversation_fields_match_their_messages(
    engine: AsyncEngine, seeded: Seeded
) -> None:
    for company in (seeded.a.company_id, seeded.b.company_id):
        mismatched = await rows(
            engine,
            """
            WITH stats AS (
                SELECT conversation_id, count(*) AS n, max(created_at) AS newest,
                       max(created_at) FILTER (WHERE direction = 'inbound') AS newest_inbound
                FROM messages WHERE company_id = :c GROUP BY conversation_id
            ), latest AS (
                SELECT DISTINCT ON (conversation_id) conversation_id, body, type, created_at
                FROM messages WHERE company_id = :c
                ORDER BY conversation_id, created_at DESC, id DESC
            ), unanswered AS (  -- inbound messages after the last outbound one
                SELECT m.conversation_id, count(*) AS n FROM messages m
                WHERE m.company_id = :c AND m.direction = 'inbound' AND m.created_at > coalesce(
                    (SELECT max(o.created_at) FROM messages o
                     WHERE o.conversation_id = m.conversation_id AND o.direction = 'outbound'),
                    '-infinity')
                GROUP BY m.conversation_id
            )
            SELECT c.id FROM conversations c
            LEFT JOIN stats s ON s.conversation_id = c.id
            LEFT JOIN latest l ON l.conversation_id = c.id
            LEFT JOIN unanswered t ON t.conversation_id = c.id
            WHERE c.company_id = :c AND (
                c.message_count <> s.n OR s.n IS NULL
                OR c.last_message_at <> s.newest
                OR c.last_inbound_at IS DISTINCT FROM s.newest_inbound
                OR c.last_message_preview <> left(coalesce(l.body, '[' || l.type || ']'), 120)
                OR c.unread_count > coalesce(t.n, 0)
                OR c.created_at > c.last_message_at
                OR c.updated_at <> c.last_message_at
            )
            """,
            c=company,
        )
        assert mismatched == []
    # a conversation is never older than its contact; messages keep created_at = provider time
    assert not await rows(
        engine,
        "SELECT 1 FROM conversations c JOIN contacts ct ON ct.id = c.contact_id"
        " WHERE c.company_id = :c AND ct.created_at > c.created_at",
        c=seeded.a.company_id,
    )
    now = datetime.now(UTC)
    spread = await rows(
        engine,
        "SELECT min(created_at), max(created_at), bool_and(created_at = provider_timestamp)"
        " FROM messages WHERE company_id = :c",
        c=seeded.a.company_id,
    )
    oldest, newest, same = spread[0]
    assert same
    assert now - timedelta(days=90) <= oldest < newest <= now
    assert newest - oldest > timedelta(days=30)  # spread over the window, not one burst


async def test_thread_lengths_are_skewed(engine: AsyncEngine, seeded: Seeded) -> None:
    counts = sorted(
        n
        for (n,) in await rows(
            engine,
            "SELECT message_count FROM conversations WHERE company_id = :c",
            c=seeded.a.company_id,
        )
    )
    median, longest = counts[len(counts) // 2], counts[-1]
    assert min(counts) >= 1
    assert median < 10 < longest  # many short threads, some long ones
    assert longest >= 5 * median


async def test_enumerations_are_the_allowed_values(engine: AsyncEngine, seeded: Seeded) -> None:
    company = seeded.a.company_id
    messages = await rows(
        engine,
        "SELECT DISTINCT direction, from_me, status, sent_by, type,"
        " sent_by_user_id IS NOT NULL FROM messages WHERE company_id = :c",
        c=company,
    )
    for direction, from_me, status, sent_by, kind, by_user in messages:
        assert kind in {t.value for t in MessageType}
        assert sent_by in {s.value for s in MessageSender}
        assert from_me == (direction == MessageDirection.OUTBOUND)
        if direction == MessageDirection.INBOUND:
            assert (status, sent_by, by_user) == (MessageStatus.RECEIVED, "customer", False)
        else:
            assert status in {"sent", "delivered", "read"}
            assert by_user == (sent_by == MessageSender.AGENT)
    kinds = {row[4] for row in messages}
    assert "text" in kinds and len(kinds) > 1  # some photos, voice notes, documents
    statuses = {s for (s,) in await rows(engine, "SELECT DISTINCT status FROM conversations")}
    assert statuses <= {s.value for s in ConversationStatus}
    deal_statuses = {
        s
        for (s,) in await rows(
            engine, "SELECT DISTINCT status FROM deals WHERE company_id = :c", c=company
        )
    }
    assert deal_statuses <= {s.value for s in DealStatus}


async def test_contacts_look_real(engine: AsyncEngine, seeded: Seeded) -> None:
    contacts = await rows(
        engine,
        "SELECT ct.name, ct.phone_number, ct.email, ct.tags, ci.value, c.remote_jid"
        " FROM contacts ct JOIN conversations c ON c.contact_id = ct.id"
        " LEFT JOIN contact_identities ci ON ci.contact_id = ct.id AND ci.kind = 'phone'"
        " WHERE ct.company_id = :c",
        c=seeded.a.company_id,
    )
    vocabulary = {tag for tag, _ in TAGS}
    tagged = [tags for *_, tags, _, _ in contacts if tags]
    assert len(tagged) > len(contacts) / 2
    assert set().union(*tagged) <= vocabulary
    phones = [phone for _, phone, *_ in contacts]
    assert len(set(phones)) == len(phones)
    assert sum(phone.startswith("+55") for phone in phones) > 0.8 * len(phones)
    for name, phone, email, _, phone_identity, remote_jid in contacts:
        assert len(name.split()) == 2
        assert phone[1:].isdigit() and 12 <= len(phone) <= 14
        assert remote_jid == f"{phone[1:]}@s.whatsapp.net"
        assert phone_identity == phone  # the contacts trigger's
        assert email is None or ("@" in email and email.isascii())
    bodies = " ".join(
        body
        for (body,) in await rows(
            engine,
            "SELECT body FROM messages WHERE company_id = :c AND body IS NOT NULL",
            c=seeded.a.company_id,
        )
    )
    assert "Obrigad" in bodies and "entrega" in bodies  # Portuguese
    assert "Thank" in bodies or "Hello" in bodies or "Hi " in bodies  # and English


async def test_deals_sit_in_their_funnels_stages(engine: AsyncEngine, seeded: Seeded) -> None:
    for company in (seeded.a.company_id, seeded.b.company_id):
        wrong = await rows(
            engine,
            """
            SELECT d.id FROM deals d
            JOIN stages s ON s.id = d.stage_id
            JOIN contacts ct ON ct.id = d.contact_id
            LEFT JOIN users u ON u.id = d.owner_user_id
            WHERE d.company_id = :c AND (
                s.funnel_id <> d.funnel_id OR s.company_id <> d.company_id
                OR ct.company_id <> d.company_id OR u.company_id <> d.company_id
                OR (d.status = 'open') <> (d.closed_at IS NULL)
                OR (d.status = 'won') <> (s.position = (SELECT max(position) FROM stages
                                                        WHERE funnel_id = s.funnel_id))
                OR d.value < 0
                OR d.stage_id <> (SELECT h.to_stage_id FROM deal_stage_changes h
                                  WHERE h.deal_id = d.id ORDER BY h.created_at DESC LIMIT 1)
            )
            """,
            c=company,
        )
        assert wrong == []
    valued = await value(
        engine,
        "SELECT count(*) FROM deals d JOIN funnels f ON f.id = d.funnel_id"
        " WHERE d.company_id = :c AND f.name = 'Vendas' AND d.value > 0",
        c=seeded.a.company_id,
    )
    assert valued > 0


async def test_companies_stay_apart(engine: AsyncEngine, seeded: Seeded) -> None:
    crossing = await rows(
        engine,
        """
        SELECT 'message' FROM messages m JOIN conversations c ON c.id = m.conversation_id
            JOIN whatsapp_instances i ON i.id = m.instance_id
            WHERE m.company_id <> c.company_id OR i.company_id <> m.company_id
        UNION ALL
        SELECT 'conversation' FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
            JOIN whatsapp_instances i ON i.id = c.instance_id
            LEFT JOIN users u ON u.id = c.assigned_user_id
            WHERE ct.company_id <> c.company_id OR i.company_id <> c.company_id
               OR u.company_id <> c.company_id
        """,
    )
    assert crossing == []
    assert seeded.a.company_id != seeded.b.company_id
    assert seeded.a.api_key != seeded.b.api_key


async def test_same_seed_same_people(engine: AsyncEngine, seeded: Seeded) -> None:
    again = await seed_demo(engine, SeedOptions(contacts=50, messages=300, company_name="Seed C"))
    people = "SELECT name, phone_number FROM contacts WHERE company_id = :c"
    first = {tuple(row) for row in await rows(engine, people, c=seeded.a.company_id)}
    second = {tuple(row) for row in await rows(engine, people, c=again.company_id)}
    assert len(second) == 50 and second <= first  # the first 50 people of seed 42, again


async def test_filling_a_company_adds_new_people(engine: AsyncEngine) -> None:
    first = await seed_demo(engine, SeedOptions(contacts=30, messages=100, company_name="Fill"))
    again = await seed_demo(
        engine, SeedOptions(contacts=20, messages=80, company_id=first.company_id)
    )
    company = first.company_id
    assert again.company_id == company and again.api_key != first.api_key
    assert await count(engine, "contacts", company) == 50
    assert await count(engine, "messages", company) == 180
    assert await count(engine, "whatsapp_instances", company) == 2
    assert await count(engine, "funnels", company) == 2
    assert await count(engine, "users", company) == 6
    assert await count(engine, "api_keys", company) == 2


async def test_unknown_company_is_not_found(engine: AsyncEngine) -> None:
    with pytest.raises(NotFound):
        await seed_demo(engine, SeedOptions(contacts=1, messages=1, company_id=uuid.uuid4()))


def test_options_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="1 or 2"):
        SeedOptions(contacts=10, messages=10, conversations_per_contact=3)
    with pytest.raises(ValueError, match="need contacts"):
        SeedOptions(contacts=0, messages=10)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zapflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )


def test_cli_help_explains_the_options() -> None:
    result = run_cli("seed-demo", "--help")
    assert result.returncode == 0, result.stderr
    for option in (
        "--contacts", "--messages", "--company-name", "--company-id",
        "--conversations-per-contact", "--seed", "--json",
    ):  # fmt: skip
        assert option in result.stdout
    assert "COPY" in result.stdout and "API key" in result.stdout


def test_cli_refuses_both_company_options() -> None:
    result = run_cli("seed-demo", "--company-name", "X", "--company-id", str(uuid.uuid4()))
    assert result.returncode == 2
    assert "not both" in result.stderr and "Traceback" not in result.stderr


async def test_cli_prints_a_working_admin_key(settings: Settings, api_url: str) -> None:
    result = await asyncio.to_thread(
        run_cli, "seed-demo", "--contacts", "20", "--messages", "150", "--json",
        env={"ZAPFLOW_DATABASE_URL": settings.database_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert (printed["contacts"], printed["messages"]) == (20, 150)
    headers = {"Authorization": f"Bearer {printed['api_key']}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as client:
        instances = await client.get("/api/v1/instances")
    assert instances.status_code == 200
    assert {i["provider"] for i in instances.json()} == {"cloud", "evolution"}
