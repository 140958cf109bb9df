"""The pipeline under faults: Temporal down, a worker killed mid-send, long conversations."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.service import RPCError

from tests.fixtures.app import Tenant, isolated_company
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    post_cloud,
    readable,
    start_with_texts,
)
from zapflow.config import Settings
from zapflow.db import transaction
from zapflow.devstack import EmbeddedStack
from zapflow.models import DeadLetter, InboxEvent, InboxEventStatus, Message, WhatsAppInstance
from zapflow.services.inbox import store_events
from zapflow.temporal import connect, workflow_gone
from zapflow.whatsapp.types import InboundMessage
from zapflow.workflows.inputs import ConversationRef

pytestmark = pytest.mark.usefixtures("worker")


async def _messages(sessions, company_id: str) -> list[Message]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        query = select(Message).where(Message.company_id == uuid.UUID(company_id))
        return list((await session.execute(query)).scalars())


async def _pending_inbox(sessions, company_id: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        query = select(func.count()).where(
            InboxEvent.company_id == uuid.UUID(company_id),
            InboxEvent.status == InboxEventStatus.PENDING,
        )
        return (await session.execute(query)).scalar_one()


async def test_webhooks_are_acknowledged_while_temporal_is_down_then_processed_once(
    stack: EmbeddedStack,
    settings: Settings,
    tenant: Tenant,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    """The relay stores the messages, then Temporal refuses its signal (the window between the
    persist's commit and the signal, as a relay killed there leaves it): the rows stay pending
    with their result, are retried without being stored again, and the workflow, once Temporal
    is back, gets the first commit's result (the ids of the messages it stored). The company's
    AI answers (after a delay longer than the test), so every message needs the workflow."""
    ai = {
        "ai_prompt": "Você atende a loja.",
        "ai_settings": {"enabled": True, "reply_delay_seconds": 600},
    }
    assert (await tenant.client.patch("/api/v1/company", json=ai)).status_code == 200
    instance = await create_cloud_instance(tenant)
    now = int(time.time())
    await asyncio.to_thread(stack.temporal.stop)
    try:
        await _deliver_twice(tenant, instance, "5511944443333", now)
        assert await _pending_inbox(sessions, tenant.id) == 5
        stored = await eventually(
            lambda: _messages(sessions, tenant.id), lambda rows: len(rows) == 5, within=60
        )
        rows = await eventually(lambda: _inbox(sessions, tenant.id), lambda r: len(r) == 5)
        await asyncio.sleep(2)  # the relay retries its signals meanwhile (a pass a second)
        assert await _inbox(sessions, tenant.id) == rows, "a retry stored them again"
    finally:
        await asyncio.to_thread(stack.start_temporal)
    await eventually(lambda: _pending_inbox(sessions, tenant.id), lambda n: n == 0, within=60)
    assert sorted(m.body for m in await _messages(sessions, tenant.id)) == [
        f"m{i}" for i in range(5)
    ]
    ref = ConversationRef(tenant.id, instance["id"], "5511944443333@s.whatsapp.net")
    history = await (await connect(settings)).get_workflow_handle(ref.workflow_id).fetch_history()
    signalled = [i for r in rows.values() for i in r["new_message_ids"]]
    assert sorted(set(signalled)) == sorted(str(m.id) for m in stored)
    assert all(i in readable(history) for i in signalled)
    off = {"ai_settings": {"enabled": False}}  # its answer, due in 10 minutes, is skipped
    assert (await tenant.client.patch("/api/v1/company", json=off)).status_code == 200


async def test_messages_that_set_off_nothing_need_no_temporal(
    stack: EmbeddedStack,
    settings: Settings,
    tenant: Tenant,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    """A company with no flow, AI or follow-up: its customers' messages are stored and their
    rows done while Temporal is down, and no conversation workflow is ever started for them."""
    instance = await create_cloud_instance(tenant)
    await asyncio.to_thread(stack.temporal.stop)
    try:
        await _deliver_twice(tenant, instance, "5511944442222", int(time.time()))
        await eventually(lambda: _pending_inbox(sessions, tenant.id), lambda n: n == 0, within=60)
    finally:
        await asyncio.to_thread(stack.start_temporal)
    assert sorted(m.body for m in await _messages(sessions, tenant.id)) == [
        f"m{i}" for i in range(5)
    ]
    ref = ConversationRef(tenant.id, instance["id"], "5511944442222@s.whatsapp.net")
    with pytest.raises(RPCError) as gone:
        await (await connect(settings)).get_workflow_handle(ref.workflow_id).describe()
    assert workflow_gone(gone.value)


async def _deliver_twice(tenant: Tenant, instance: dict[str, Any], wa_id: str, now: int) -> None:
    """Five texts, "m0" to "m4", each posted twice (the provider retries too)."""
    for i in range(5):
        delivery = cloud_delivery(
            instance["phone_number_id"], cloud_text(wa_id, f"wamid.{wa_id}.{i}", f"m{i}", now + i)
        )
        for _ in range(2):
            response = await post_cloud(tenant.client, instance["webhook_url"], delivery)
            assert response.status_code == 200, response.text


async def _inbox(sessions, company_id: str) -> dict[int, dict]:  # type: ignore[no-untyped-def]
    """The persist results written on the company's pending inbound rows, by row."""
    async with sessions() as session:
        query = select(InboxEvent.id, InboxEvent.persisted).where(
            InboxEvent.company_id == uuid.UUID(company_id),
            InboxEvent.status == InboxEventStatus.PENDING,
            InboxEvent.persisted.is_not(None),  # type: ignore[union-attr]
        )
        return {i: persisted for i, persisted in await session.execute(query)}


async def test_conversation_continues_as_new_without_losing_signals(
    settings: Settings,
    tenant: Tenant,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    instance = await create_cloud_instance(tenant)
    ref = ConversationRef(tenant.id, instance["id"], "5511933332222@s.whatsapp.net")
    client = await connect(settings)
    handle = await start_with_texts(client, settings.messages_task_queue, ref, 30)
    stored = await eventually(
        lambda: _messages(sessions, tenant.id), lambda r: len(r) == 30, within=45
    )
    assert sorted(int(m.body[1:]) for m in stored if m.body) == list(range(30))
    # it continues as new at least once: after storing (the last texts may be stored before
    # the run's embeddings drain and it hands over)
    await eventually(
        client.get_workflow_handle(ref.workflow_id).describe,
        lambda described: described.run_id != handle.result_run_id,
    )


async def test_worker_killed_mid_send_never_sends_twice(
    isolated: Settings, provider_server: ProviderServer
) -> None:
    async with isolated_company(isolated, "Kill Co") as world:
        tenant, sessions, client = world.tenant, world.sessions, world.tenant.client
        instance = await create_cloud_instance(tenant)
        delivery = cloud_delivery(
            instance["phone_number_id"],
            cloud_text("5511922221111", "wamid.K1", "oi", int(time.time())),
        )
        assert (await post_cloud(client, instance["webhook_url"], delivery)).status_code == 200
        stored = await eventually(lambda: _messages(sessions, tenant.id), lambda r: len(r) == 1)
        provider_server.delay_next(1, seconds=8, to="5511922221111")
        reply = await client.post(
            f"/api/v1/conversations/{stored[0].conversation_id}/messages", json={"text": "olá"}
        )
        assert reply.status_code == 202
        await provider_server.wait_for_sent("5511922221111", within=20)
        world.worker.kill()  # the provider has the request; its answer is lost
        await world.worker.restart()
        message_id = reply.json()["id"]
        failed = await eventually(
            lambda: _message(sessions, message_id), lambda m: m.status == "failed", within=60
        )
        assert failed.error is not None and failed.error["type"] == "DeliveryUnknown"
        assert len(provider_server.sent_to("5511922221111")) == 1
        async with sessions() as session:
            letters = (await session.execute(select(DeadLetter))).scalars().all()
        assert [letter.reference["message_id"] for letter in letters] == [message_id]

        # the provider's status webhook echoes our id: the message did go out
        statuses = cloud_delivery(
            instance["phone_number_id"],
            {
                "statuses": [
                    {
                        "id": "wamid.OUT1",
                        "status": "delivered",
                        "timestamp": str(int(time.time())),
                        "recipient_id": "5511922221111",
                        "biz_opaque_callback_data": message_id,
                    }
                ]
            },
        )
        assert (await post_cloud(client, instance["webhook_url"], statuses)).status_code == 200
        delivered = await eventually(
            lambda: _message(sessions, message_id), lambda m: m.status == "delivered", 30
        )
        assert delivered.message_key_id == "wamid.OUT1" and delivered.error is None
        async with sessions() as session:
            [letter] = (await session.execute(select(DeadLetter))).scalars().all()
        assert letter.status == "discarded"
        assert len(provider_server.sent_to("5511922221111")) == 1


async def _message(sessions, message_id: str) -> Message:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        message = await session.get(Message, uuid.UUID(message_id))
        assert message is not None
        return message


async def test_events_wait_in_postgres_while_redis_is_down(
    stack: EmbeddedStack,
    tenant: Tenant,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    from tests.fixtures.traffic import EventListener
    from zapflow.models import EventOutbox

    async def outbox_rows() -> int:
        async with sessions() as session:
            query = select(func.count()).where(EventOutbox.company_id == uuid.UUID(tenant.id))
            return (await session.execute(query)).scalar_one()

    instance = await create_cloud_instance(tenant)
    async with EventListener(tenant.client) as listener:
        await asyncio.to_thread(stack.redis.stop)
        try:
            delivery = cloud_delivery(
                instance["phone_number_id"],
                cloud_text("5511911110000", "wamid.R1", "oi", int(time.time())),
            )
            assert (
                await post_cloud(tenant.client, instance["webhook_url"], delivery)
            ).status_code == 200
            await eventually(lambda: _messages(sessions, tenant.id), lambda r: len(r) == 1)
            assert await outbox_rows() >= 2  # message.created + conversation.updated, kept
            health = await tenant.client.get("/readyz")
            assert health.status_code == 503 and health.json()["failing"] == ["redis"]
        finally:
            await asyncio.to_thread(stack.start_redis)
        created = await listener.wait_for("message.created", lambda e: len(e) == 1, within=30)
    assert created[0]["data"]["message_key_id"] == "wamid.R1"
    assert await outbox_rows() == 0


async def test_a_batch_that_cannot_be_stored_becomes_a_dead_letter_and_the_chat_goes_on(
    tenant: Tenant,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    """A message whose provider time is out of range fails the persist for good (not an outage):
    after bounded retries its batch is a dead letter naming its inbox row, and the customer's
    next message is stored."""
    instance_row = await create_cloud_instance(tenant)
    jid = "5511955554444@s.whatsapp.net"

    def message(key_id: str, timestamp: int) -> InboundMessage:
        return InboundMessage(
            key_id=key_id, remote_jid=jid, from_me=False, type="text", provider="cloud",
            phone="+5511955554444", body="oi", timestamp=timestamp,
        )  # fmt: skip

    async def deliver(event: InboundMessage) -> None:
        async with transaction(sessions) as session:
            instance = await session.get(WhatsAppInstance, uuid.UUID(instance_row["id"]))
            assert instance is not None
            await store_events(session, instance, [event], "test")

    await deliver(message("wamid.BAD", 10**13))  # the year 318857

    async def letters() -> list[DeadLetter]:
        async with sessions() as session:
            query = select(DeadLetter).where(DeadLetter.company_id == uuid.UUID(tenant.id))
            return list((await session.execute(query)).scalars())

    [letter] = await eventually(letters, lambda found: len(found) == 1, within=60)
    assert letter.kind == "other" and letter.reference["message_key_ids"] == []
    assert len(letter.reference["inbox_event_ids"]) == 1 and "out of range" in letter.error
    await deliver(message("wamid.GOOD", int(time.time())))
    stored = await eventually(lambda: _messages(sessions, tenant.id), lambda r: len(r) == 1, 30)
    assert stored[0].message_key_id == "wamid.GOOD"
