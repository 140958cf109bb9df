"""Live events over SSE: per conversation, per tenant, resumable with Last-Event-ID; metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import httpx
import pytest
from sqlalchemy import select

from tests.fixtures.app import SCRAPER, Tenant
from tests.fixtures.provider_server import ProviderServer, RecordedRequest
from tests.fixtures.traffic import (
    EventListener,
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    create_evolution_instance,
    eventually,
    post_cloud,
)
from zapflow.api.sse import _resume_id
from zapflow.config import Settings
from zapflow.db import after_commit, attach, create_engine, session_factory, transaction
from zapflow.models import Conversation, Message
from zapflow.redis import create_redis
from zapflow.services.events import PUBLISH, Event, Staged, publish_staged, stage

pytestmark = pytest.mark.usefixtures("worker")


async def _say(tenant: Tenant, instance: dict, wa_id: str, key: str, text: str) -> None:  # type: ignore[type-arg]
    delivery = cloud_delivery(
        instance["phone_number_id"], cloud_text(wa_id, key, text, int(time.time()))
    )
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200


async def _conversation_of(sessions, tenant: Tenant, remote_jid: str) -> str:  # type: ignore[no-untyped-def]
    async def probe() -> uuid.UUID | None:
        async with sessions() as session:
            query = select(Conversation.id).where(
                Conversation.company_id == uuid.UUID(tenant.id),
                Conversation.remote_jid == remote_jid,
            )
            return (await session.execute(query)).scalar_one_or_none()

    return str(await eventually(probe, lambda found: found is not None))


async def test_conversation_stream_shows_only_that_conversation(tenant: Tenant, sessions) -> None:  # type: ignore[no-untyped-def]
    instance = await create_cloud_instance(tenant)
    await _say(tenant, instance, "5511900000001", "wamid.S1", "first")
    conversation_id = await _conversation_of(sessions, tenant, "5511900000001@s.whatsapp.net")
    path = f"/api/v1/conversations/{conversation_id}/stream"
    async with EventListener(tenant.client, path) as listener:
        await _say(tenant, instance, "5511900000002", "wamid.S2", "someone else")
        await _say(tenant, instance, "5511900000001", "wamid.S3", "second")
        created = await listener.wait_for("message.created", lambda e: len(e) >= 1)
        await eventually(lambda: _count_messages(sessions, tenant), lambda n: n == 3)
    assert [e["data"]["body"] for e in created] == ["second"]
    assert {e["conversation_id"] for e in listener.events} == {conversation_id}


async def test_stream_never_shows_another_company(
    tenant: Tenant,
    api_url: str,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    from zapflow.db import transaction
    from zapflow.services.auth import create_company

    async with transaction(sessions) as session:
        _, other_key = await create_company(session, "Other Co")
    headers = {"Authorization": f"Bearer {other_key.plain}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as other:
        async with EventListener(other) as outsider, EventListener(tenant.client) as insider:
            instance = await create_cloud_instance(tenant)
            await _say(tenant, instance, "5511900000003", "wamid.S4", "private")
            await insider.wait_for("message.created", lambda e: len(e) == 1)
        conversation_id = await _conversation_of(sessions, tenant, "5511900000003@s.whatsapp.net")
        foreign = await other.get(f"/api/v1/conversations/{conversation_id}/stream")
        assert foreign.status_code == 404
    assert outsider.events == []


async def test_reconnecting_with_last_event_id_replays_what_was_missed(
    tenant: Tenant, sessions
) -> None:  # type: ignore[no-untyped-def]
    instance = await create_cloud_instance(tenant)
    async with EventListener(tenant.client) as listener:
        await _say(tenant, instance, "5511900000004", "wamid.L1", "before")
        await listener.wait_for("message.created", lambda e: len(e) == 1)
    missed_from = listener.last_id
    await _say(tenant, instance, "5511900000004", "wamid.L2", "while away")
    await eventually(lambda: _count_messages(sessions, tenant), lambda n: n == 2)
    resumed = EventListener(tenant.client)
    resumed.last_id = missed_from
    async with resumed:
        created = await resumed.wait_for("message.created", lambda e: len(e) >= 1)
    assert [e["data"]["body"] for e in created] == ["while away"]


async def test_evolution_reply_goes_out_through_evolution(
    tenant: Tenant,
    sessions,
    provider_server: ProviderServer,  # type: ignore[no-untyped-def]
) -> None:
    from tests.whatsapp.payloads import load

    instance = await create_evolution_instance(tenant)
    delivery = load("evolution_conversation")
    delivery["apikey"] = "evo-key"
    assert (await tenant.client.post(instance["webhook_url"], json=delivery)).status_code == 200
    remote_jid = delivery["data"]["key"]["remoteJid"]
    conversation_id = await _conversation_of(sessions, tenant, remote_jid)
    reply = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Bom dia!"}
    )
    assert reply.status_code == 202
    number = remote_jid.split("@")[0]

    async def sent() -> list[RecordedRequest]:
        return provider_server.sent_to(number)

    [request] = await eventually(sent, lambda found: len(found) == 1)
    assert request.path == f"/message/sendText/{instance['evolution_instance']}"
    assert request.headers["apikey"] == "evo-key"
    assert request.json["text"] == "Bom dia!"


async def test_metrics_label_routes_by_template_and_expose_the_backlog(tenant: Tenant) -> None:
    await tenant.client.get(f"/api/v1/instances/{uuid.uuid4()}")
    text = (await tenant.client.get("/metrics", headers=SCRAPER)).text
    assert 'path_template="/api/v1/instances/{instance_id}"' in text
    assert "zapflow_inbox_pending" in text
    assert "zapflow_sse_connections_open" in text


async def _count_messages(sessions, tenant: Tenant) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        query = select(Message.id).where(Message.company_id == uuid.UUID(tenant.id))
        return len((await session.execute(query)).all())


async def test_media_and_template_replies_reach_the_cloud_api(
    tenant: Tenant,
    sessions,
    provider_server: ProviderServer,  # type: ignore[no-untyped-def]
) -> None:
    instance = await create_cloud_instance(tenant)
    await _say(tenant, instance, "5511900000005", "wamid.M1", "manda o catálogo")
    conversation_id = await _conversation_of(sessions, tenant, "5511900000005@s.whatsapp.net")
    path = f"/api/v1/conversations/{conversation_id}/messages"
    media = {
        "url": "https://example.com/catalogo.pdf",
        "kind": "document",
        "filename": "catalogo.pdf",
    }
    template = {"name": "boas_vindas", "language": "pt_BR", "params": ["Maria"]}
    assert (
        await tenant.client.post(path, json={"type": "media", "media": media})
    ).status_code == 202
    assert (
        await tenant.client.post(path, json={"type": "template", "template": template})
    ).status_code == 202

    async def sent() -> list[RecordedRequest]:
        return provider_server.sent_to("5511900000005")

    document, welcome = [r.json for r in await eventually(sent, lambda found: len(found) == 2)]
    assert document["type"] == "document"
    assert document["document"] == {"link": media["url"], "filename": "catalogo.pdf"}
    assert welcome["type"] == "template"
    assert welcome["template"]["name"] == "boas_vindas"
    assert welcome["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Maria"}]


async def test_send_rejects_content_that_does_not_match_its_type(tenant: Tenant, sessions) -> None:  # type: ignore[no-untyped-def]
    instance = await create_cloud_instance(tenant)
    await _say(tenant, instance, "5511900000006", "wamid.M2", "oi")
    conversation_id = await _conversation_of(sessions, tenant, "5511900000006@s.whatsapp.net")
    response = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"type": "media", "text": "x"}
    )
    assert response.status_code == 422
    assert "media" in response.json()["error"]["message"]


def test_a_last_event_id_redis_cannot_read_starts_with_what_happens_next() -> None:
    """Redis stream ids are ASCII digits: anything else (``²`` passes ``isdigit``) would have
    the resuming read refused by Redis again and again instead of starting the stream."""
    assert _resume_id("1733150000000-3") == "1733150000000-3"
    assert _resume_id("²-0") is None
    assert _resume_id("١٢-0") is None
    assert _resume_id("12-x") is None


async def test_a_transaction_publishes_what_it_staged_once_after_what_its_steps_registered(
    settings: Settings, tenant: Tenant
) -> None:
    """Several steps of one transaction stage events (the relay's, one conversation after the
    other): one publish after the commit, in the order staged, after every callback registered
    before the last stage (a contact's cached copy dropped before its news goes out)."""
    engine = create_engine(settings, pool_size=1)
    sessions = session_factory(engine)
    redis = create_redis(settings)
    done: list[tuple[str, ...]] = []

    async def publish(staged: Sequence[Staged]) -> None:
        done.append(("publish", *(s.event_type for s in staged)))
        assert await publish_staged(sessions, redis, staged) == len(staged)

    async def forget() -> None:
        done.append(("forget",))

    attach(sessions, **{PUBLISH: publish})
    company = uuid.UUID(tenant.id)
    async with transaction(sessions) as session:
        await stage(session, [Event("test.a", company, {})])
        after_commit(session, forget)
        await stage(session, [Event("test.b", company, {}), Event("test.c", company, {})])
    assert done == [("forget",), ("publish", "test.a", "test.b", "test.c")]
    await redis.aclose()
    await engine.dispose()
