"""Workflows are long-lived: histories written by earlier code must replay with today's.

``tests/histories/*.json`` were recorded from real runs on the embedded stack (conversations with
inbound batches, a reply sent, a follow-up fired, a flow run started and answered, a
continue-as-new; a scheduled campaign, edited before its start); the test replays each with
the current workflow code. ``s6-conversation-*`` hold inbound batches the relay stored itself
(signals carrying the persist's result, no persist activity).
A change to a workflow's command sequence that is not behind ``workflow.patched`` fails here.

To record histories of the current code (a new scenario, or a new workflow version worth keeping
beside the old ones): ``ZAPFLOW_RECORD_HISTORIES=<label> pytest tests/test_replay.py``; the files
are written as ``tests/histories/<label>-<scenario>.json``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from tests.fixtures.app import Tenant
from tests.fixtures.campaigns import (
    audience,
    campaign_body,
    create,
    finished,
    number_with_templates,
)
from tests.fixtures.openai_server import OpenAIServer
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    ok_json,
    post_cloud,
    start_conversation,
    start_with_texts,
)
from tests.test_flows_runs import new_customer, published, sample
from tests.test_interactive import CONFIRM_FLOW, numbered_choice_answered
from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.temporal import DATA_CONVERTER, connect
from zapflow.worker.main import SANDBOXED_RUNNER
from zapflow.workflows.campaign import CampaignWorkflow
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.flow import FlowWorkflow
from zapflow.workflows.inputs import ConversationRef

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("ZAPFLOW_RECORD_HISTORIES")


def _histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.parametrize("path", _histories(), ids=lambda p: p.stem)
def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[ConversationWorkflow, FlowWorkflow, CampaignWorkflow],
        data_converter=DATA_CONVERTER,
        workflow_runner=SANDBOXED_RUNNER,
    )
    asyncio.run(replayer.replay_workflow(history))


# --- recording -----------------------------------------------------------------------------------


async def _save(client: Client, scenario: str, workflow_id: str, run_id: str | None = None) -> None:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{RECORD}-{scenario}.json").write_text(history.to_json())


@pytest.mark.skipif(not RECORD, reason="records only when ZAPFLOW_RECORD_HISTORIES is set")
@pytest.mark.usefixtures("worker")
async def test_record_histories(
    tenant: Tenant,
    settings: Settings,
    provider_server: ProviderServer,
    openai_server: OpenAIServer,
    sessions: SessionFactory,
) -> None:
    client = await connect(settings)

    # a campaign scheduled an hour ahead, edited to a second ahead: the wake, its timer, the
    # snapshot, batches, the finish
    await _record_campaign(client, tenant, provider_server, sessions)

    # the AI answers (its turn beside the main loop since "ai-turn-task"), then the customer again
    await _record_ai_turn(client, tenant, provider_server, openai_server)

    # inbound batches, a reply sent, a follow-up fired, then the customer again
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    instance, conversation_id = await start_conversation(tenant, wa_id)
    now = int(time.time())
    messages = [cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", f"m{i}", now + i) for i in range(2)]
    for message in messages:
        await _deliver(tenant, instance, message)
    reply = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "olá"}
    )
    assert reply.status_code == 202, reply.text
    await provider_server.wait_for_requests(1, within=30)
    followup = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/followups", json={"after": "PT1S", "text": "e?"}
    )
    assert followup.status_code == 201, followup.text
    await eventually(lambda: _sent(provider_server, wa_id), lambda n: n == 2, within=30)
    await _deliver(tenant, instance, cloud_text(wa_id, "wamid.LAST", "ok", now + 9))
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    await eventually(lambda: _message_count(tenant, conversation_id), lambda n: n >= 6, within=30)
    await _save(client, "conversation-reply-followup", _workflow_id(tenant, conversation))

    # a flow triggered by a new contact's first message, answered once
    flow_id = await published(tenant.client, sample(triggers=True))
    customer, flow_conversation = await new_customer(tenant, provider_server)
    await customer.wait_for(2)
    await customer.say("Maria")
    await customer.wait_for(3)
    await _save(client, "conversation-flow", _workflow_id(tenant, flow_conversation))
    [run] = (await tenant.client.get(f"/api/v1/flows/{flow_id}/runs")).json()["data"]
    await _save(client, "flow-run", run["workflow_id"])

    # continue-as-new after a few signals
    other = await create_cloud_instance(tenant)
    ref = ConversationRef(tenant.id, other["id"], "5511933332222@s.whatsapp.net")
    handle = await start_with_texts(client, settings.messages_task_queue, ref, 12)

    async def run_id() -> str | None:
        return (await client.get_workflow_handle(ref.workflow_id).describe()).run_id

    await eventually(run_id, lambda r: r != handle.result_run_id, within=45)
    await _save(client, "conversation-continued", ref.workflow_id, handle.result_run_id)


@pytest.mark.skipif(not RECORD, reason="records only when ZAPFLOW_RECORD_HISTORIES is set")
@pytest.mark.usefixtures("worker")
async def test_record_numbered_choice(
    tenant: Tenant, settings: Settings, provider_server: ProviderServer
) -> None:
    """A flow run since "flow-interactive-choices" and "flow-numbered-choices": buttons sent
    as numbered text to an Evolution number, answered by the customer's "1"."""
    flow_id = await published(tenant.client, CONFIRM_FLOW)
    await numbered_choice_answered(tenant, provider_server, "1")
    [run] = (await tenant.client.get(f"/api/v1/flows/{flow_id}/runs")).json()["data"]
    await _save(await connect(settings), "flow-numbered-choice", run["workflow_id"])


async def _record_campaign(
    client: Client, tenant: Tenant, provider: ProviderServer, sessions: SessionFactory
) -> None:
    instance = await number_with_templates(tenant, provider)
    await audience(sessions, tenant.id, 3, "replay")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    made = await create(
        tenant, campaign_body(instance, "replay", throughput=20, scheduled_at=later)
    )
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()  # edited: a wake, then timers
    edited = await tenant.client.patch(
        f"/api/v1/campaigns/{made['id']}", json={"scheduled_at": soon}
    )
    assert edited.status_code == 200, edited.text
    done = await finished(tenant, made["id"], within=60)
    assert done["status"] == "completed"
    await _save(client, "campaign", done["workflow_id"])


async def _record_ai_turn(
    client: Client, tenant: Tenant, provider_server: ProviderServer, openai_server: OpenAIServer
) -> None:
    wa_id = "55118" + str(uuid.uuid4().int)[:8]
    instance, conversation_id = await start_conversation(tenant, wa_id)
    body = {"ai_prompt": "Seja breve.", "ai_settings": {"enabled": True, "reply_delay_seconds": 0}}
    assert (await tenant.client.patch("/api/v1/company", json=body)).status_code == 200
    openai_server.queue_reply("Olá!")
    openai_server.queue_reply("Até logo!")
    await _deliver(tenant, instance, cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", "oi?"))
    await eventually(lambda: _sent(provider_server, wa_id), lambda n: n == 1, within=30)
    await _deliver(tenant, instance, cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", "ok"))
    await eventually(lambda: _sent(provider_server, wa_id), lambda n: n == 2, within=30)
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    await _save(client, "conversation-ai", _workflow_id(tenant, conversation))
    body["ai_settings"] = {"enabled": False}
    assert (await tenant.client.patch("/api/v1/company", json=body)).status_code == 200


async def _deliver(tenant: Tenant, instance: dict[str, Any], message: dict[str, Any]) -> None:
    delivery = cloud_delivery(instance["phone_number_id"], message)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200


def _workflow_id(tenant: Tenant, conversation: dict[str, str]) -> str:
    ref = ConversationRef(tenant.id, conversation["instance_id"], conversation["remote_jid"])
    return ref.workflow_id


async def _sent(provider: ProviderServer, wa_id: str) -> int:
    return len(provider.sent_to(wa_id))


async def _message_count(tenant: Tenant, conversation_id: str) -> int:
    response = await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages")
    return len(ok_json(response)["data"])
