"""End to end on the embedded stack: webhook → inbox → relay → ConversationWorkflow → Postgres →
SSE, and replies out through the provider, with redelivery and bad input along the way."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    EventListener,
    cloud_delivery,
    cloud_statuses,
    cloud_text,
    create_cloud_instance,
    eventually,
    ok_json,
    post_cloud,
    start_conversation,
)
from zapflow.models import Contact, Conversation, InboxEvent, InboxEventStatus, Message

pytestmark = pytest.mark.usefixtures("worker")


async def count(sessions, model, company_id: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        query = (
            select(func.count()).select_from(model).where(model.company_id == uuid.UUID(company_id))
        )
        return (await session.execute(query)).scalar_one()


async def test_messages_sent_within_one_second_read_in_the_order_they_arrived(
    tenant: Tenant,
) -> None:
    """Providers stamp whole seconds, and one pass stores both messages in one statement (one
    ``created_at``): the thread used to show them in a random order."""
    instance = await create_cloud_instance(tenant)
    now = int(time.time())
    said = [("wamid.Z", "primeiro"), ("wamid.M", "segundo"), ("wamid.A", "terceiro")]
    changes = [cloud_text("5511988886666", key, text, now) for key, text in said]
    delivery = cloud_delivery(instance["phone_number_id"], *changes)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200

    async def thread() -> list[str]:
        listed = await tenant.client.get("/api/v1/conversations")
        conversations = ok_json(listed)["data"]
        if not conversations:
            return []
        page = await tenant.client.get(f"/api/v1/conversations/{conversations[0]['id']}/messages")
        return [m["body"] for m in reversed(ok_json(page)["data"])]

    assert await eventually(thread, lambda found: len(found) == 3) == [t for _, t in said]


async def test_batched_delivery_is_stored_once_and_streamed_once(tenant: Tenant, sessions) -> None:  # type: ignore[no-untyped-def]
    instance = await create_cloud_instance(tenant)
    now = int(time.time())
    delivery = cloud_delivery(
        instance["phone_number_id"],
        {
            "contacts": [{"profile": {"name": "Maria"}, "wa_id": "5511988887777"}],
            "messages": [
                *cloud_text("5511988887777", "wamid.A", "oi", now)["messages"],
                *cloud_text("5511988887777", "wamid.B", "tudo bem?", now + 1)["messages"],
            ],
        },
        cloud_text("5511988887777", "wamid.C", "quero comprar", now + 2),
    )  # fmt: skip
    async with EventListener(tenant.client) as listener:
        for _ in range(10):
            response = await post_cloud(tenant.client, instance["webhook_url"], delivery)
            assert response.status_code == 200, response.text
        await eventually(lambda: count(sessions, Message, tenant.id), lambda n: n == 3)
        created = await listener.wait_for("message.created", lambda e: len(e) >= 3)
        await _settle()
    assert await count(sessions, Message, tenant.id) == 3
    assert await count(sessions, Contact, tenant.id) == 1
    assert await count(sessions, Conversation, tenant.id) == 1
    assert len(listener.of_type("message.created")) == 3
    assert [e["data"]["body"] for e in created] == ["oi", "tudo bem?", "quero comprar"]
    async with sessions() as session:
        conversation = (await session.execute(select(Conversation))).scalars().all()
        mine = next(c for c in conversation if str(c.company_id) == tenant.id)
    assert (mine.message_count, mine.unread_count) == (3, 3)
    assert mine.last_message_at == datetime.fromtimestamp(now + 2, UTC)  # the newest message's
    assert (
        mine.workflow_id
        == f"conversation/{tenant.id}/{instance['id']}/5511988887777@s.whatsapp.net"
    )


async def test_a_first_message_from_someone_new_looks_for_no_other_conversation_of_theirs(
    tenant: Tenant,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    """The person's conversation under another key is looked for (a lock and a read) only when
    the contact existed: one this persist created has no other."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    instance = await create_cloud_instance(tenant)
    statements: list[str] = []

    def record(_conn, _cursor, statement: str, *_) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        for key, wa_id in (("wamid.N1", "5511955550001"), ("wamid.N2", "5511955550001")):
            delivery = cloud_delivery(
                instance["phone_number_id"], cloud_text(wa_id, key, "olá", int(time.time()))
            )
            assert (
                await post_cloud(tenant.client, instance["webhook_url"], delivery)
            ).status_code == 200
            await eventually(
                lambda: count(sessions, Message, tenant.id), lambda n, k=key: n == int(k[-1])
            )
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    persisted = [s for s in statements if "INSERT INTO messages" in s]
    looked = [s for s in statements if "SELECT conversations.remote_jid" in s]
    assert (len(persisted), looked) == (2, [])  # the second: its conversation exists


async def _settle() -> None:
    """Give a wrongly duplicated event the time to show up before asserting there is none."""
    import asyncio

    await asyncio.sleep(1.0)


async def test_wrong_signature_is_refused_and_nothing_stored(tenant: Tenant, sessions) -> None:  # type: ignore[no-untyped-def]
    instance = await create_cloud_instance(tenant)
    delivery = cloud_delivery(instance["phone_number_id"], cloud_text("551100", "wamid.X", "x", 1))
    wrong = await post_cloud(
        tenant.client, instance["webhook_url"], delivery, signature="sha256=00"
    )
    missing = await tenant.client.post(instance["webhook_url"], json=delivery)
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong.json()["error"]["code"] == "unauthorized"
    assert await count(sessions, InboxEvent, tenant.id) == 0


async def test_malformed_body_from_signed_sender_is_kept_as_rejected(
    tenant: Tenant, sessions
) -> None:  # type: ignore[no-untyped-def]
    instance = await create_cloud_instance(tenant)
    response = await post_cloud(tenant.client, instance["webhook_url"], {"object": "page"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_payload"
    async with sessions() as session:
        rows = (
            (
                await session.execute(
                    select(InboxEvent).where(InboxEvent.company_id == uuid.UUID(tenant.id))
                )
            )
            .scalars()
            .all()
        )
    assert [r.status for r in rows] == [InboxEventStatus.REJECTED]
    assert rows[0].payload == {"object": "page"}


async def test_oversized_body_gets_413(tenant: Tenant) -> None:
    instance = await create_cloud_instance(tenant)
    response = await tenant.client.post(
        instance["webhook_url"], content=b"x" * (3 * 1024 * 1024 + 1)
    )
    assert response.status_code == 413


async def test_meta_handshake(tenant: Tenant) -> None:
    instance = await create_cloud_instance(tenant)
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": instance["verify_token"],
        "hub.challenge": "1158201444",
    }
    ok = await tenant.client.get(instance["webhook_url"], params=params)
    bad = await tenant.client.get(
        instance["webhook_url"], params={**params, "hub.verify_token": "nope"}
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert bad.status_code == 403


async def test_reply_goes_out_once_and_statuses_only_move_forward(
    tenant: Tenant,
    sessions,
    provider_server: ProviderServer,  # type: ignore[no-untyped-def]
) -> None:
    instance, conversation_id = await start_conversation(tenant, "5511977776666")

    async with EventListener(tenant.client) as listener:
        send = {"type": "text", "text": "Olá, Maria!", "client_id": "reply-1"}
        first = await tenant.client.post(
            f"/api/v1/conversations/{conversation_id}/messages", json=send
        )
        again = await tenant.client.post(
            f"/api/v1/conversations/{conversation_id}/messages", json=send
        )
        assert (first.status_code, again.status_code) == (202, 200)
        assert first.json()["id"] == again.json()["id"]
        [request] = await provider_server.wait_for_sent("5511977776666")
        assert request.json["text"]["body"] == "Olá, Maria!"
        sent = await eventually(
            lambda: _message(sessions, first.json()["id"]), lambda m: m.status == "sent"
        )

        now = int(time.time())
        # out of order: read before delivered, and a late "sent"
        statuses = cloud_statuses(
            instance["phone_number_id"],
            (sent.message_key_id, "read", "5511977776666", now + 2),
            (sent.message_key_id, "delivered", "5511977776666", now + 1),
            (sent.message_key_id, "sent", "5511977776666", now),
        )
        assert (
            await post_cloud(tenant.client, instance["webhook_url"], statuses)
        ).status_code == 200
        await eventually(
            lambda: _message(sessions, first.json()["id"]), lambda m: m.status == "read"
        )
        await listener.wait_for(
            "message.status", lambda e: any(x["data"]["status"] == "read" for x in e)
        )
    await _settle()
    assert len(provider_server.sent_to("5511977776666")) == 1
    assert (await _message(sessions, first.json()["id"])).status == "read"


async def test_permanent_provider_refusal_fails_the_message_with_a_dead_letter(
    tenant: Tenant,
    sessions,
    provider_server: ProviderServer,  # type: ignore[no-untyped-def]
) -> None:
    from zapflow.models import DeadLetter

    _, conversation_id = await start_conversation(tenant, "5511966665555")
    provider_server.fail_next(1, status=400, to="5511966665555")
    sent = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "x"}
    )
    failed = await eventually(
        lambda: _message(sessions, sent.json()["id"]), lambda m: m.status == "failed"
    )
    assert failed.error and failed.error["status_code"] == 400
    assert await count(sessions, DeadLetter, tenant.id) == 1


async def test_retryable_provider_errors_are_retried(
    tenant: Tenant,
    sessions,
    provider_server: ProviderServer,  # type: ignore[no-untyped-def]
) -> None:
    _, conversation_id = await start_conversation(tenant, "5511955554444")
    provider_server.fail_next(1, status=429, retry_after=0, to="5511955554444")
    provider_server.fail_next(1, status=500, to="5511955554444")
    sent = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "x"}
    )
    await eventually(lambda: _message(sessions, sent.json()["id"]), lambda m: m.status == "sent")
    assert [r.status for r in provider_server.sent_to("5511955554444")] == [429, 500, 200]


async def _message(sessions, message_id: str) -> Message:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        message = await session.get(Message, uuid.UUID(message_id))
        assert message is not None
        return message


async def test_evolution_webhook_authenticates_and_resolves_lid_aliases(
    tenant: Tenant, sessions
) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.traffic import create_evolution_instance
    from tests.whatsapp.payloads import load

    instance = await create_evolution_instance(tenant)
    delivery = load("evolution_lid_alt")
    refused = await tenant.client.post(instance["webhook_url"], json=delivery)  # wrong apikey
    assert refused.status_code == 401
    delivery["apikey"] = "evo-key"
    by_event = instance["webhook_url"] + "/messages-upsert"
    accepted = await tenant.client.post(by_event, json=delivery)
    assert accepted.status_code == 200, accepted.text
    await eventually(lambda: count(sessions, Message, tenant.id), lambda n: n == 1)
    async with sessions() as session:
        contact = (
            await session.execute(select(Contact).where(Contact.company_id == uuid.UUID(tenant.id)))
        ).scalar_one()
    assert (contact.phone_number, contact.lid, contact.name) == (
        "+5511987654321",
        "207123456789012@lid",
        "Maria Souza",
    )


async def test_one_app_webhook_feeds_each_number_its_own_events(tenant: Tenant, sessions) -> None:  # type: ignore[no-untyped-def]
    sales = await create_cloud_instance(tenant)
    support = await create_cloud_instance(tenant)  # same Meta app: same app secret
    now = int(time.time())
    delivery = cloud_delivery(
        sales["phone_number_id"], cloud_text("5511900001111", "wamid.P1", "to sales", now)
    )
    delivery["entry"] += cloud_delivery(
        support["phone_number_id"], cloud_text("5511900002222", "wamid.P2", "to support", now)
    )["entry"]
    delivery["entry"] += cloud_delivery(
        "999999999", cloud_text("5511900003333", "wamid.P3", "unknown number", now)
    )["entry"]
    ack = await post_cloud(tenant.client, sales["webhook_url"], delivery)
    assert ack.json() == {"stored": 2, "duplicates": 0}
    await eventually(lambda: count(sessions, Message, tenant.id), lambda n: n == 2)
    async with sessions() as session:
        rows = (
            await session.execute(select(Message).where(Message.company_id == uuid.UUID(tenant.id)))
        ).scalars()
        instance_of = {m.body: str(m.instance_id) for m in rows}
        rejected = (
            await session.execute(
                select(InboxEvent).where(
                    InboxEvent.company_id == uuid.UUID(tenant.id),
                    InboxEvent.status == InboxEventStatus.REJECTED,
                )
            )
        ).scalar_one()
    assert instance_of == {"to sales": sales["id"], "to support": support["id"]}
    assert rejected.error == "no instance of this company has phone_number_id 999999999"
