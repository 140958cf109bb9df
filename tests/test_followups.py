"""Follow-ups on the real stack: scheduled, fired once on time, cancelled by a reply (also when
the reply and the timer reach the worker together), surviving a worker crash, business hours,
WhatsApp's 24-hour window, sequences, events, and the API's refusals."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from temporalio.client import Client

from tests.fixtures.app import Tenant, isolated_company
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    EventListener,
    cloud_delivery,
    cloud_text,
    eventually,
    pending_work,
    post_cloud,
    start_conversation,
)
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import Conversation
from zapflow.services.auth import create_company
from zapflow.temporal import connect
from zapflow.whatsapp.cloud import parse_webhook
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.inputs import InboundBatch

pytestmark = pytest.mark.usefixtures("worker")


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def _schedule(tenant: Tenant, conversation_id: str, **body: Any) -> list[dict[str, Any]]:
    response = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/followups", json=body
    )
    assert response.status_code == 201, response.text
    return list(response.json())


async def _followup(tenant: Tenant, followup_id: str) -> dict[str, Any]:
    response = await tenant.client.get(f"/api/v1/followups/{followup_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _status(tenant: Tenant, followup_id: str, status: str, within: float = 20) -> dict:
    async def probe() -> dict[str, Any]:
        return await _followup(tenant, followup_id)

    return await eventually(probe, lambda f: f["status"] == status, within)


async def _reply(tenant: Tenant, instance: dict[str, Any], wa_id: str, text: str) -> None:
    message = cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", text, int(time.time()))
    delivery = cloud_delivery(instance["phone_number_id"], message)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200


async def _pending_timers(workflow_id: str, client: Client) -> int:
    return (await pending_work(client, workflow_id))["followups"]


async def test_fires_once_on_time(tenant: Tenant, provider_server: ProviderServer) -> None:
    _, conversation_id = await start_conversation(tenant, "5511900000001")
    async with EventListener(tenant.client) as listener:
        [followup] = await _schedule(tenant, conversation_id, after="PT2S", text="Ainda por aí?")
        assert followup["status"] == "PENDING" and followup["workflow_id"].startswith(
            "conversation/"
        )
        sent = await _status(tenant, followup["id"], "SENT")
        await listener.wait_for("followup.sent", lambda e: len(e) == 1)
    [request] = provider_server.sent_to("5511900000001")
    assert request.json["text"]["body"] == "Ainda por aí?"
    due = datetime.fromisoformat(sent["scheduled_for"]).timestamp()
    assert request.time >= due  # never early
    assert sent["message_id"] and datetime.fromisoformat(sent["sent_at"]).timestamp() >= due
    assert [e["data"]["id"] for e in listener.of_type("followup.scheduled")] == [followup["id"]]
    # a message id was sent once: the follow-up's message row says who sent it
    messages = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages")).json()
    [mine] = [m for m in messages["data"] if m["id"] == sent["message_id"]]
    assert mine["sent_by"] == "followup" and mine["status"] in {"sent", "delivered", "read"}


async def test_reply_before_the_time_cancels(
    tenant: Tenant, provider_server: ProviderServer, settings: Settings
) -> None:
    instance, conversation_id = await start_conversation(tenant, "5511900000002")
    [keep] = await _schedule(
        tenant, conversation_id, after="PT1H", text="fica", cancel_on_reply=False
    )
    [followup] = await _schedule(tenant, conversation_id, after="PT30S", text="Oi?")
    client = await connect(settings)
    workflow_id = followup["workflow_id"]
    await eventually(lambda: _pending_timers(workflow_id, client), lambda n: n == 2)
    async with EventListener(tenant.client) as listener:
        await _reply(tenant, instance, "5511900000002", "estou aqui")
        cancelled = await _status(tenant, followup["id"], "CANCELLED")
        await listener.wait_for("followup.cancelled", lambda e: len(e) == 1)
    assert cancelled["failure_reason"] == "customer_replied" and cancelled["cancelled_at"]
    # the workflow let go of its timer, so nothing can fire; the other follow-up stays
    assert await eventually(lambda: _pending_timers(workflow_id, client), lambda n: n == 1)
    assert (await _followup(tenant, keep["id"]))["status"] == "PENDING"
    assert provider_server.sent_to("5511900000002") == []


async def test_cancel_and_reschedule(tenant: Tenant, settings: Settings) -> None:
    _, conversation_id = await start_conversation(tenant, "5511900000003")
    [followup] = await _schedule(tenant, conversation_id, after="PT1H", text="Oi?")
    moved = await tenant.client.patch(f"/api/v1/followups/{followup['id']}", json={"after": "P2D"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["scheduled_for"] > followup["scheduled_for"]
    assert (await tenant.client.delete(f"/api/v1/followups/{followup['id']}")).status_code == 204
    again = await tenant.client.delete(f"/api/v1/followups/{followup['id']}")
    assert again.status_code == 409 and "CANCELLED" in again.json()["error"]["message"]
    late = await tenant.client.patch(f"/api/v1/followups/{followup['id']}", json={"after": 60})
    assert late.status_code == 409
    client = await connect(settings)
    await eventually(lambda: _pending_timers(followup["workflow_id"], client), lambda n: n == 0)
    listed = await tenant.client.get(
        "/api/v1/followups", params={"status": "CANCELLED", "conversation_id": conversation_id}
    )
    assert [f["id"] for f in listed.json()["data"]] == [followup["id"]]


async def test_sequence_is_cancelled_as_a_whole_by_a_reply(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    instance, conversation_id = await start_conversation(tenant, "5511900000004")
    steps = [{"after": "PT1S", "text": "primeiro"}, {"after": "PT1H", "text": "segundo"}]
    first, second = await _schedule(tenant, conversation_id, steps=steps)
    assert first["sequence_id"] == second["sequence_id"] and second["sequence_step"] == 2
    assert second["scheduled_for"] > first["scheduled_for"]
    await _status(tenant, first["id"], "SENT")
    await _reply(tenant, instance, "5511900000004", "recebi")
    await _status(tenant, second["id"], "CANCELLED")
    assert [r.json["text"]["body"] for r in provider_server.sent_to("5511900000004")] == [
        "primeiro"
    ]


async def test_outside_the_24_hour_window(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    _, conversation_id = await start_conversation(tenant, "5511900000005")
    async with transaction(sessions) as session:  # the customer last wrote two days ago
        await session.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(conversation_id))  # type: ignore[arg-type]
            .values(last_inbound_at=datetime.now(UTC) - timedelta(days=2))
        )
    templates = [{"name": "retomar_contato", "language": "pt_BR", "parameters": 1}]
    patched = await tenant.client.patch(
        "/api/v1/company", json={"settings": {"templates": templates}}
    )
    assert patched.status_code == 200, patched.text
    [text_only] = await _schedule(tenant, conversation_id, after="PT1S", text="Oi?")
    [with_template] = await _schedule(
        tenant,
        conversation_id,
        after="PT1S",
        text="Oi?",
        template={"name": "retomar_contato", "language": "pt_BR", "params": ["Ana"]},
    )
    failed = await _status(tenant, text_only["id"], "FAILED")
    assert failed["failure_reason"] == "outside_24h_window" and failed["message_id"] is None
    await _status(tenant, with_template["id"], "SENT")
    [request] = provider_server.sent_to("5511900000005")
    assert request.json["type"] == "template"
    assert request.json["template"]["name"] == "retomar_contato"


async def test_business_hours_move_the_time_to_the_next_opening(tenant: Tenant) -> None:
    _, conversation_id = await start_conversation(tenant, "5511900000006")
    now = datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).strftime("%a").lower()
    hours = {tomorrow: [["10:00", "11:00"]]}  # open only tomorrow, 10:00-11:00 UTC
    patched = await tenant.client.patch(
        "/api/v1/company", json={"timezone": "UTC", "business_hours": hours}
    )
    assert patched.status_code == 200, patched.text
    [moved] = await _schedule(
        tenant, conversation_id, after="PT5S", text="Oi?", only_in_business_hours=True
    )
    [kept] = await _schedule(tenant, conversation_id, after="PT1H", text="Oi?")
    opening = datetime.combine((now + timedelta(days=1)).date(), datetime.min.time(), UTC)
    assert datetime.fromisoformat(moved["scheduled_for"]) == opening + timedelta(hours=10)
    assert datetime.fromisoformat(kept["scheduled_for"]) < opening + timedelta(hours=10)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"at": "2020-01-01T09:00:00+00:00", "text": "x"}, "in the past"),
        ({"after": 0, "text": "x"}, "more than zero"),
        ({"after": "P400D", "text": "x"}, "at most 365 days"),
        ({"after": "PT1H", "at": _in(3600), "text": "x"}, "exactly one of"),
        ({"after": "PT1H"}, "`text`, `template`"),
        ({"at": "2030-01-01T09:00:00", "text": "x"}, "timezone"),
        ({"after": "PT1H", "template": {"name": "nope"}}, "template 'nope' does not exist"),
        ({"steps": [{"after": "PT1H", "text": "a"}], "text": "b"}, "not both"),
    ],
)
async def test_bad_requests_say_what_is_wrong(
    tenant: Tenant, body: dict[str, Any], complaint: str
) -> None:
    _, conversation_id = await start_conversation(tenant, "5511900000007")
    response = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/followups", json=body
    )
    assert response.status_code == 422, response.text
    assert complaint in response.text


async def test_closed_conversations_and_other_companies(
    tenant: Tenant, sessions: SessionFactory, api_url: str
) -> None:
    _, conversation_id = await start_conversation(tenant, "5511900000008")
    [followup] = await _schedule(tenant, conversation_id, after="PT1H", text="Oi?")
    async with transaction(sessions) as session:
        _, other_key = await create_company(session, "Other Co")
    other = {"Authorization": f"Bearer {other_key.plain}"}
    for method, path in [
        ("GET", f"/api/v1/followups/{followup['id']}"),
        ("DELETE", f"/api/v1/followups/{followup['id']}"),
        ("PATCH", f"/api/v1/followups/{followup['id']}"),
        ("POST", f"/api/v1/conversations/{conversation_id}/followups"),
    ]:
        body = {"after": "PT1H", "text": "x"} if method in {"POST", "PATCH"} else None
        if method == "PATCH":
            body = {"after": "PT1H"}
        response = await tenant.client.request(method, api_url + path, json=body, headers=other)
        assert response.status_code == 404, (method, path, response.text)
    listed = await tenant.client.get("/api/v1/followups", headers=other)
    assert listed.json()["data"] == []
    closed = await tenant.client.post(f"/api/v1/conversations/{conversation_id}/close")
    assert closed.status_code == 200, closed.text
    refused = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/followups", json={"after": 60, "text": "x"}
    )
    assert refused.status_code == 422 and "closed" in refused.json()["error"]["message"]


# ---- crashes and the reply/timer race: a worker process of their own to kill ----


async def test_worker_killed_during_the_wait_still_fires_once(
    isolated: Settings, provider_server: ProviderServer
) -> None:
    async with isolated_company(isolated, "Crash Co") as world:
        _, conversation_id = await start_conversation(world.tenant, "5511900000009")
        [followup] = await _schedule(world.tenant, conversation_id, after="PT4S", text="Oi?")
        temporal = await connect(isolated)
        workflow_id = followup["workflow_id"]
        await eventually(lambda: _pending_timers(workflow_id, temporal), lambda n: n == 1)
        world.worker.kill()
        await _until(followup["scheduled_for"], margin=1)  # the due time passes unseen
        await world.worker.restart()
        await _status(world.tenant, followup["id"], "SENT", within=60)
    assert len(provider_server.sent_to("5511900000009")) == 1


async def test_reply_and_timer_reaching_the_worker_together_the_reply_wins(
    isolated: Settings, provider_server: ProviderServer
) -> None:
    """The worker is down while the timer fires and the reply's signal lands, so its next
    workflow task holds both: signals are handled first, and the follow-up is cancelled."""
    async with isolated_company(isolated, "Race Co") as world:
        instance, conversation_id = await start_conversation(world.tenant, "5511900000010")
        [followup] = await _schedule(world.tenant, conversation_id, after="PT3S", text="Oi?")
        temporal = await connect(isolated)
        workflow_id = followup["workflow_id"]
        await eventually(lambda: _pending_timers(workflow_id, temporal), lambda n: n == 1)
        world.worker.kill()
        await _until(followup["scheduled_for"], margin=0.5)  # the timer has fired
        # the reply, signalled the way the relay does (the relay died with the worker)
        message = cloud_text("5511900000010", "wamid.RACE", "oi", int(time.time()))
        [inbound] = parse_webhook(cloud_delivery(instance["phone_number_id"], message))
        handle = temporal.get_workflow_handle(workflow_id)
        await handle.signal(ConversationWorkflow.inbound, InboundBatch([inbound]))
        await world.worker.restart()
        cancelled = await _status(world.tenant, followup["id"], "CANCELLED", within=60)
    assert cancelled["failure_reason"] == "customer_replied"
    assert provider_server.sent_to("5511900000010") == []


async def _until(moment: str, margin: float) -> None:
    """Sleep until ``margin`` seconds after an ISO moment (a timer's due time, known exactly)."""
    await asyncio.sleep(max(0.0, datetime.fromisoformat(moment).timestamp() - time.time()) + margin)
