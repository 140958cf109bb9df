"""Operations routes: queue health with thresholds, dead letters listed and replayed."""

from __future__ import annotations

import uuid

import pytest

from tests.fixtures.app import Tenant, in_process_api
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    create_cloud_instance,
    eventually,
    ok_json,
    post_cloud,
    start_conversation,
)
from zapflow.config import Settings
from zapflow.db import transaction
from zapflow.models import Message, UserRole
from zapflow.services.auth import create_api_key
from zapflow.temporal import connect
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.inputs import ConversationInput, ConversationRef, OutboundBatch

pytestmark = pytest.mark.usefixtures("worker")


async def test_queue_health_reports_every_queue(tenant: Tenant, sessions) -> None:  # type: ignore[no-untyped-def]
    report = (await tenant.client.get("/api/v1/ops/queues")).json()
    by_name = {q["queue"]: q for q in report["queues"]}
    assert set(by_name) == {
        "inbox",
        "embedding_queue",
        "messages",
        "embeddings",
        "flows",
        "ai",
        "followups",
    }
    assert by_name["messages"]["pollers"] >= 1
    assert (report["warning_backlog"], report["critical_backlog"]) == (100, 500)
    async with transaction(sessions) as session:
        agent = await create_api_key(session, uuid.UUID(tenant.id), "agent", UserRole.AGENT)
    refused = await tenant.client.get(
        "/api/v1/ops/queues", headers={"Authorization": f"Bearer {agent.plain}"}
    )
    assert refused.status_code == 403


async def test_queue_health_flags_a_backlog_nobody_works_on(
    settings: Settings, tenant: Tenant
) -> None:
    stopped = settings.model_copy(
        update={
            "messages_task_queue": f"stopped-{uuid.uuid4().hex[:8]}",
            "queue_warning_backlog": 1,
            "queue_critical_backlog": 3,
        }
    )
    client = await connect(stopped)
    for i in range(2):
        ref = ConversationRef(tenant.id, str(uuid.uuid4()), f"55119{i}@s.whatsapp.net")
        await client.start_workflow(
            ConversationWorkflow.run,
            ConversationInput(ref),
            id=ref.workflow_id,
            task_queue=stopped.messages_task_queue,
        )
    async with in_process_api(stopped, tenant.api_key) as (_, api):

        async def report() -> dict:  # type: ignore[type-arg]
            return ok_json(await api.get("/api/v1/ops/queues"))

        def stopped_queue(found: dict) -> dict:  # type: ignore[type-arg]
            return next(q for q in found["queues"] if q["queue"] == stopped.messages_task_queue)

        found = await eventually(report, lambda r: stopped_queue(r)["backlog"] == 2, within=20)
    queue = stopped_queue(found)
    assert (queue["backlog"], queue["pollers"], queue["level"]) == (2, 0, "warning")
    assert found["status"] in ("warning", "critical")  # the worst queue decides


async def test_a_refused_send_is_dead_lettered_then_replayed_once_fixed(
    tenant: Tenant,
    sessions,
    provider_server: ProviderServer,  # type: ignore[no-untyped-def]
) -> None:
    customer = "55119" + str(uuid.uuid4().int)[:8]
    _, cid = await start_conversation(tenant, customer)
    provider_server.fail_next(1, status=400, to=customer)
    sent = (
        await tenant.client.post(f"/api/v1/conversations/{cid}/messages", json={"text": "x"})
    ).json()

    async def letters() -> list[dict]:  # type: ignore[type-arg]
        return ok_json(await tenant.client.get("/api/v1/ops/dead-letters?status=open"))["data"]

    # the send goes through the outbox, the relay, the workflow, the provider and back: on a
    # loaded test process that takes longer than eventually's default
    [letter] = await eventually(letters, lambda rows: len(rows) == 1, within=60)
    assert letter["kind"] == "send" and letter["reference"]["message_id"] == sent["id"]
    replayed = await tenant.client.post(f"/api/v1/ops/dead-letters/{letter['id']}/replay")
    assert replayed.status_code == 200 and replayed.json()["status"] == "replayed"

    async def status() -> str:
        async with sessions() as session:
            message = await session.get(Message, uuid.UUID(sent["id"]))
            assert message is not None
            return message.status.value

    # the replayed send goes through the inbox too
    assert await eventually(status, lambda s: s == "sent", within=60) == "sent"
    # only this customer's: another test's late send (a flow's timeout) may land meanwhile
    assert [r.status for r in provider_server.sent_to(customer)] == [400, 200]
    again = await tenant.client.post(f"/api/v1/ops/dead-letters/{letter['id']}/replay")
    assert again.status_code == 409
    other_company = await tenant.client.post(f"/api/v1/ops/dead-letters/{uuid.uuid4()}/replay")
    assert other_company.status_code == 404


async def test_a_request_for_the_send_in_flight_is_not_dropped(
    tenant: Tenant,
    settings: Settings,
    sessions,
    provider_server: ProviderServer,  # type: ignore[no-untyped-def]
) -> None:
    """A replay's signal may reach the workflow before the failed send's end does (both in one
    activation: signals first). Asked again while in flight, the message is queued again; the
    second send's claim finds it failed and sends nothing twice."""
    customer = "55119" + str(uuid.uuid4().int)[:8]
    instance, cid = await start_conversation(tenant, customer)
    provider_server.delay_next(1, seconds=2.0)  # the send stays in flight meanwhile
    provider_server.fail_next(1, status=400, to=customer)
    sent = (
        await tenant.client.post(f"/api/v1/conversations/{cid}/messages", json={"text": "x"})
    ).json()
    message_id = uuid.UUID(sent["id"])

    async def status() -> str:
        async with sessions() as session:
            message = await session.get(Message, message_id)
            assert message is not None
            return message.status.value

    await eventually(status, lambda s: s == "sending")
    remote_jid = (await tenant.client.get(f"/api/v1/conversations/{cid}")).json()["remote_jid"]
    ref = ConversationRef(tenant.id, instance["id"], remote_jid)
    handle = (await connect(settings)).get_workflow_handle(ref.workflow_id)
    await handle.signal(ConversationWorkflow.outbound, OutboundBatch([str(message_id)]))

    async def sends_and_queued() -> tuple[int, int]:
        scheduled = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            async for e in handle.fetch_history_events()
        ]
        pending = await handle.query(ConversationWorkflow.pending)
        return scheduled.count("send_message"), pending["outbound"]

    # dropped, the request left one send; queued again, a second one once the first ended
    assert await eventually(sends_and_queued, lambda got: got[1] == 0) == (2, 0)
    assert await status() == "failed"
    assert [r.status for r in provider_server.sent_to(customer)] == [400]


async def test_an_unreadable_delivery_is_a_dead_letter_until_it_can_be_read(
    tenant: Tenant,
) -> None:
    instance = await create_cloud_instance(tenant)
    refused = await post_cloud(tenant.client, instance["webhook_url"], {"object": "page"})
    assert refused.status_code == 400

    async def letters() -> list[dict]:  # type: ignore[type-arg]
        return ok_json(await tenant.client.get("/api/v1/ops/dead-letters?kind=inbox_event"))["data"]

    [letter] = await eventually(letters, lambda rows: len(rows) == 1)
    assert "whatsapp_business_account" in letter["error"]
    replayed = (await tenant.client.post(f"/api/v1/ops/dead-letters/{letter['id']}/replay")).json()
    assert replayed["status"] == "open" and replayed["attempts"] == 2
    assert replayed["replay_result"]["ok"] is False
    assert replayed["replay_result"]["error"].startswith("still unreadable")
