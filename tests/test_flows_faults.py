"""Flow runs under faults: the worker killed while a run waits resumes it at the same node
without resending anything; the conversation's workflow continuing-as-new while a run waits
neither ends nor orphans the run."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter

import httpx
import pytest

from tests.fixtures.app import Tenant, in_process_api, start_worker
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import create_cloud_instance, eventually, ok_json
from tests.test_flows_runs import (
    ended,
    new_customer,
    published,
    run_when,
    sales_funnel,
    sample,
    start_run,
)
from zapflow.config import Settings
from zapflow.db import create_engine, session_factory, transaction
from zapflow.services.auth import create_company
from zapflow.temporal import connect
from zapflow.whatsapp.types import InboundMessage
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.inputs import ConversationInput, ConversationRef, InboundBatch


async def test_worker_killed_mid_run_resumes_at_the_same_node_without_resending(
    isolated: Settings, provider_server: ProviderServer
) -> None:
    engine = create_engine(isolated, pool_size=2)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        company, key = await create_company(session, "Kill Flow Co")
    worker = start_worker(isolated)
    try:
        async with in_process_api(isolated, key.plain) as (_, client):
            tenant = Tenant(str(company.id), key.plain, client)
            await sales_funnel(client)
            flow_id = await published(client, sample(wait="4s"))
            customer, conversation = await new_customer(tenant, provider_server)
            run = await start_run(client, flow_id, conversation["contact_id"])
            await customer.wait_for(2)
            await customer.say("Ana")
            await customer.wait_for(3)
            await customer.say("300")
            waiting = await run_when(
                client, run["id"], lambda r: r["current_node_id"] == "follow_up_wait", 30
            )
            assert waiting["status"] == "waiting"
            # "Thanks, Ana! ..." went out before the wait and is recorded sent: the kill finds the
            # run waiting on its timer and no send in the provider's hands (killed mid-send, it
            # failed as delivery unknown once its 15 s timeout ran out, and the follow-up queued
            # behind it went out that much later)
            await eventually(
                lambda: replies_sent(client, conversation["id"]), lambda sent: sent == 4
            )

            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            worker = start_worker(isolated)

            finished = await ended(client, run["id"], within=60)
            assert finished["status"] == "completed"
            texts = await customer.wait_for(5, within=30)
            assert texts[-1].startswith("Hi Ana, here is the starter guide")
            assert all(n == 1 for n in Counter(texts).values()), texts
            nodes = [t["node"] for t in finished["transcript"] if t["event"] == "send"]
            assert nodes == ["greeting", "ask_name", "ask_budget", "thanks", "follow_up"]
            deals = (await client.get("/api/v1/deals")).json()["data"]
            assert len(deals) == 1  # the deal step did not run again either
    finally:
        worker.kill()
        worker.wait(10)
        await engine.dispose()


async def replies_sent(client: httpx.AsyncClient, conversation_id: str) -> int:
    """The conversation's outbound messages the provider has accepted (status sent or later)."""
    listed = ok_json(await client.get(f"/api/v1/conversations/{conversation_id}/messages"))
    done = ("sent", "delivered", "read")
    return sum(1 for m in listed["data"] if m["from_me"] and m["status"] in done)


@pytest.mark.usefixtures("worker")
async def test_conversation_continues_as_new_while_a_run_waits(
    settings: Settings, tenant: Tenant, provider_server: ProviderServer
) -> None:
    flow_id = await published(
        tenant.client,
        {
            "name": "pause",
            "triggers": [{"type": "keyword", "keywords": ["start"]}],
            "start": "hi",
            "nodes": [
                {"id": "hi", "type": "send_text", "text": "hi", "next": "pause"},
                {"id": "pause", "type": "wait", "duration": "4s", "next": "bye"},
                {"id": "bye", "type": "send_text", "text": "bye", "next": "done"},
                {"id": "done", "type": "end"},
            ],
        },
    )
    instance = await create_cloud_instance(tenant)
    phone = "55119" + str(uuid.uuid4().int)[:8]
    ref = ConversationRef(tenant.id, instance["id"], f"{phone}@s.whatsapp.net")
    client = await connect(settings)
    handle = await client.start_workflow(
        ConversationWorkflow.run,
        ConversationInput(
            ref, history_limit=10, embeddings_task_queue=settings.embeddings_task_queue
        ),
        id=ref.workflow_id,
        task_queue=settings.messages_task_queue,
    )
    now = int(time.time())

    async def say(n: int, text: str) -> None:
        message = InboundMessage(
            key_id=f"wamid.CANF{n}", remote_jid=ref.remote_jid, from_me=False, type="text",
            provider="cloud", phone=f"+{phone}", body=text, timestamp=now + n,
        )  # fmt: skip
        await handle.signal(ConversationWorkflow.inbound, InboundBatch([message]))

    await say(0, "start")

    async def runs() -> list[dict[str, object]]:
        return list(ok_json(await tenant.client.get(f"/api/v1/flows/{flow_id}/runs"))["data"])

    [run] = await eventually(runs, lambda found: len(found) == 1)
    for n in range(1, 25):  # replies while the run waits: the parent's history grows past 10
        await say(n, f"n{n}")
    finished = await ended(tenant.client, str(run["id"]), within=60)
    assert finished["status"] == "completed"
    description = await client.get_workflow_handle(ref.workflow_id).describe()
    assert description.run_id != handle.result_run_id  # the parent continued as new meanwhile

    def sent() -> list[str]:
        return [
            r.json["text"]["body"]
            for r in list(provider_server.requests)
            if isinstance(r.json, dict) and str(r.json.get("to", "")).lstrip("+") == phone
        ]

    async def texts() -> list[str]:
        return sent()

    assert await eventually(texts, lambda found: len(found) >= 2) == ["hi", "bye"]
    # the new parent heard the run end: the next start is not refused as a second active run
    again = await start_run(tenant.client, flow_id, str(finished["contact_id"]))
    again = await ended(tenant.client, again["id"], within=60)
    assert (again["status"], again["error"]) == ("completed", None)
