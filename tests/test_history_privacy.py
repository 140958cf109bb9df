"""Customers' text stays out of Temporal: a conversation's workflow history holds references.

Anyone with the Temporal Web UI reads workflow histories, so the ConversationWorkflow is signalled
with inbox row ids and message ids, and its activities read the text from Postgres. This test
writes unique words through every path into a conversation (the customer's messages, an agent's
reply, a follow-up) and looks for them in the history's JSON.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    eventually,
    post_cloud,
    readable,
    start_conversation,
)
from zapflow.config import Settings
from zapflow.temporal import connect
from zapflow.workflows.inputs import ConversationRef

pytestmark = pytest.mark.usefixtures("worker")


async def test_a_conversations_history_holds_no_text_of_its_messages(
    tenant: Tenant, settings: Settings, provider_server: ProviderServer
) -> None:
    secret = uuid.uuid4().hex[:12]
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    instance, conversation_id = await start_conversation(tenant, wa_id)
    # a follow-up the customer's messages cancel: their persist's result goes to the workflow
    waiting = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/followups",
        json={"after": "PT1H", "text": "ainda precisa de ajuda?"},
    )
    assert waiting.status_code == 201, waiting.text
    now = int(time.time())
    for i, text in enumerate((f"meu cpf é {secret}-a", f"endereço {secret}-b")):
        delivery = cloud_delivery(
            instance["phone_number_id"],
            cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", text, now + i),
        )
        assert (
            await post_cloud(tenant.client, instance["webhook_url"], delivery)
        ).status_code == 200
    reply = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": f"ok {secret}-c"}
    )
    assert reply.status_code == 202, reply.text
    await provider_server.wait_for_requests(1, within=30)
    followup = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/followups",
        json={"after": "PT1S", "text": f"e aí? {secret}-d"},
    )
    assert followup.status_code == 201, followup.text

    async def sent() -> int:
        return len(provider_server.sent_to(wa_id))

    await eventually(sent, lambda n: n == 2, within=60)  # the reply and the follow-up went out
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    bodies = [
        m["body"]
        for m in (
            await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages")
        ).json()["data"]
    ]
    assert sum(secret in (b or "") for b in bodies) == 4, bodies  # every text was stored

    ref = ConversationRef(tenant.id, conversation["instance_id"], conversation["remote_jid"])
    client = await connect(settings)
    history = await client.get_workflow_handle(ref.workflow_id).fetch_history()
    assert len(history.events) > 5
    assert conversation["id"] in readable(history)  # payloads are read (the persist's result)
    assert secret not in readable(history)
