"""The AI agent on the real stack, against a loopback server playing an OpenAI-compatible API:
debounced answers, human takeover and resume, retries and dead letters, tools, availability."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from tests.fixtures.app import Tenant
from tests.fixtures.openai_server import OpenAIServer
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    create_evolution_instance,
    eventually,
    ok_json,
    pending_work,
    post_cloud,
    start_conversation,
)
from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.models import DeadLetter
from zapflow.temporal import connect
from zapflow.whatsapp.simulate import evolution_text

pytestmark = pytest.mark.usefixtures("worker")

PROMPT = "Você é a assistente da Acme. Responda em português."


async def _enable_ai(tenant: Tenant, **settings: Any) -> None:
    body = {
        "ai_prompt": PROMPT,
        "ai_settings": {"enabled": True, "reply_delay_seconds": 1.0, **settings},
    }
    response = await tenant.client.patch("/api/v1/company", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["ai_status"] == {"available": True, "enabled": True, "reason": None}


async def _say(
    tenant: Tenant, instance: dict[str, Any], wa_id: str, text: str, at: int | None = None
) -> None:
    message = cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", text, at or int(time.time()))
    delivery = cloud_delivery(instance["phone_number_id"], message)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200


async def _messages(tenant: Tenant, conversation_id: str) -> list[dict[str, Any]]:
    page = ok_json(await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages"))
    return list(page["data"])[::-1]  # oldest first


def _ai_sent(provider: ProviderServer, wa_id: str) -> list[str]:
    return [r.json["text"]["body"] for r in provider.sent_to(wa_id)]


async def _pending(settings: Settings, tenant: Tenant, conversation_id: str) -> dict[str, int]:
    conversation = ok_json(await tenant.client.get(f"/api/v1/conversations/{conversation_id}"))
    client = await connect(settings)
    workflow_id = (
        f"conversation/{tenant.id}/{conversation['instance_id']}/{conversation['remote_jid']}"
    )
    return await pending_work(client, workflow_id)


async def test_a_burst_of_messages_gets_one_answer(
    tenant: Tenant, openai_server: OpenAIServer, provider_server: ProviderServer
) -> None:
    instance, conversation_id = await start_conversation(tenant, "5511910000001")
    await _enable_ai(tenant)
    openai_server.queue_reply("Olá! Temos sim, a partir de R$ 99.")
    now = int(time.time())  # typed a second apart: WhatsApp's timestamps count seconds
    for offset, text in enumerate(("oi", "vocês têm o plano básico?", "quanto custa?")):
        await _say(tenant, instance, "5511910000001", text, at=now + offset)
    await eventually(
        lambda: _messages(tenant, conversation_id),
        lambda ms: any(m["sent_by"] == "ai" and m["status"] == "sent" for m in ms),
    )
    [request] = openai_server.requests_to("/chat/completions")
    sent = request.json
    assert sent["messages"][0]["role"] == "system" and PROMPT in sent["messages"][0]["content"]
    users = [m["content"] for m in sent["messages"] if m["role"] == "user"]
    assert users[-3:] == ["oi", "vocês têm o plano básico?", "quanto custa?"]
    assert {t["function"]["name"] for t in sent["tools"]} == {
        "lookup_deals",
        "schedule_followup",
        "handoff",
    }
    assert _ai_sent(provider_server, "5511910000001") == ["Olá! Temos sim, a partir de R$ 99."]


async def test_an_agent_reply_takes_over_and_resume_gives_the_ai_back(
    tenant: Tenant, openai_server: OpenAIServer, settings: Settings
) -> None:
    instance, conversation_id = await start_conversation(tenant, "5511910000002")
    await _enable_ai(tenant)
    reply = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Oi, aqui é a Ana."}
    )
    assert reply.status_code == 202, reply.text
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    assert conversation["is_paused"] is True
    await _say(tenant, instance, "5511910000002", "obrigado Ana")
    await eventually(
        lambda: _messages(tenant, conversation_id), lambda ms: ms[-1]["body"] == "obrigado Ana"
    )
    # the message is stored and the workflow decided: no answer is pending, none was asked for
    assert (await _pending(settings, tenant, conversation_id))["ai_answer"] == 0
    assert openai_server.requests_to("/chat/completions") == []

    resumed = await tenant.client.post(f"/api/v1/conversations/{conversation_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["is_paused"] is False
    await _say(tenant, instance, "5511910000002", "e agora?")
    await eventually(
        lambda: _messages(tenant, conversation_id),
        lambda ms: ms[-1]["sent_by"] == "ai" and ms[-1]["body"] == "echo: e agora?",
    )


async def test_a_message_typed_on_the_business_phone_takes_over(
    tenant: Tenant, openai_server: OpenAIServer, settings: Settings
) -> None:
    await _enable_ai(tenant, reply_delay_seconds=30)
    instance = await create_evolution_instance(tenant)
    webhook = instance["webhook_url"] + "/messages-upsert"
    name = instance["evolution_instance"]
    customer = evolution_text(name, "evo-key", "5511910000003", "EVO1", "oi, tudo bem?")
    assert (await tenant.client.post(webhook, json=customer)).status_code == 200

    async def listed() -> list[dict[str, Any]]:
        return list(ok_json(await tenant.client.get("/api/v1/conversations"))["data"])

    [conversation] = await eventually(listed, lambda rows: len(rows) == 1)
    await eventually(
        lambda: _pending(settings, tenant, conversation["id"]), lambda p: p["ai_answer"] == 1
    )
    from_phone = evolution_text(name, "evo-key", "5511910000003", "EVO2", "Oi! Já te atendo.")
    from_phone["data"]["key"]["fromMe"] = True
    assert (await tenant.client.post(webhook, json=from_phone)).status_code == 200
    await eventually(
        lambda: _pending(settings, tenant, conversation["id"]), lambda p: p["ai_answer"] == 0
    )
    current = (await tenant.client.get(f"/api/v1/conversations/{conversation['id']}")).json()
    assert current["is_paused"] is True
    assert openai_server.requests_to("/chat/completions") == []


async def test_rate_limits_and_server_errors_are_retried(
    tenant: Tenant, openai_server: OpenAIServer
) -> None:
    instance, conversation_id = await start_conversation(tenant, "5511910000004")
    await _enable_ai(tenant, reply_delay_seconds=0)
    openai_server.fail_next(1, status=429, retry_after=0)
    openai_server.fail_next(1, status=503)
    await _say(tenant, instance, "5511910000004", "alô?")
    await eventually(
        lambda: _messages(tenant, conversation_id),
        lambda ms: ms[-1]["sent_by"] == "ai" and ms[-1]["body"] == "echo: alô?",
        within=30,
    )
    assert [r.status for r in openai_server.requests_to("/chat/completions")] == [429, 503, 200]


async def test_a_stalled_model_holds_back_none_of_the_customers_messages(
    tenant: Tenant, openai_server: OpenAIServer
) -> None:
    """The AI's turn runs beside the conversation's loop: while the model hangs, what the
    customer writes next is stored (and streamed) at once."""
    instance, conversation_id = await start_conversation(tenant, "5511910000009")
    await _enable_ai(tenant, reply_delay_seconds=0)
    openai_server.delay_next(1, seconds=60)
    await _say(tenant, instance, "5511910000009", "oi")
    await eventually(lambda: _chat_requests(openai_server), lambda n: n == 1, within=30)
    await _say(tenant, instance, "5511910000009", "ainda aí?")
    messages = await eventually(
        lambda: _messages(tenant, conversation_id),
        lambda ms: any(m["body"] == "ainda aí?" for m in ms),
        within=20,
    )
    assert not any(m["sent_by"] == "ai" for m in messages)  # the model has not answered yet
    assert await _chat_requests(openai_server) == 1
    # the second message asks for another turn: off, so no later test's scripted reply is used
    off = {"ai_settings": {"enabled": False}}
    assert (await tenant.client.patch("/api/v1/company", json=off)).status_code == 200


async def _chat_requests(openai_server: OpenAIServer) -> int:
    return len(openai_server.requests_to("/chat/completions"))


async def test_a_refused_request_ends_in_a_dead_letter_and_sends_nothing(
    tenant: Tenant,
    openai_server: OpenAIServer,
    provider_server: ProviderServer,
    sessions: SessionFactory,
) -> None:
    instance, _ = await start_conversation(tenant, "5511910000005")
    await _enable_ai(tenant, reply_delay_seconds=0, model="no-such-model")
    openai_server.fail_next(1, status=404, body={"error": {"message": "model not found"}})
    await _say(tenant, instance, "5511910000005", "oi?")

    async def letters() -> list[DeadLetter]:
        async with sessions() as session:
            query = select(DeadLetter).where(DeadLetter.company_id == uuid.UUID(tenant.id))  # type: ignore[arg-type]
            return list((await session.execute(query)).scalars())

    [letter] = await eventually(letters, lambda found: len(found) == 1)
    assert letter.kind == "ai" and "404" in letter.error and letter.attempts == 1
    assert len(openai_server.requests_to("/chat/completions")) == 1
    assert _ai_sent(provider_server, "5511910000005") == []


async def test_tools_look_up_deals_schedule_follow_ups_and_hand_off(
    tenant: Tenant, openai_server: OpenAIServer
) -> None:
    instance, conversation_id = await start_conversation(tenant, "5511910000006")
    await _enable_ai(tenant, reply_delay_seconds=0)
    openai_server.queue_tool_call("lookup_deals", {})
    openai_server.queue_tool_call("schedule_followup", {"after_hours": 24, "text": "E aí?"})
    openai_server.queue_reply("Seu pedido está em andamento; amanhã te escrevo.")
    await _say(tenant, instance, "5511910000006", "como está meu pedido?")
    await eventually(
        lambda: _messages(tenant, conversation_id), lambda ms: ms[-1]["sent_by"] == "ai"
    )
    _, second, third = openai_server.requests_to("/chat/completions")
    assert second.json["messages"][-1]["role"] == "tool"
    assert second.json["messages"][-1]["content"] == "[]"  # no deals yet
    assert "scheduled_for" in third.json["messages"][-1]["content"]
    followups = await tenant.client.get(
        "/api/v1/followups", params={"conversation_id": conversation_id, "status": "PENDING"}
    )
    [followup] = followups.json()["data"]
    assert followup["message_text"] == "E aí?"

    openai_server.queue_tool_call("handoff", {"reason": "quer falar com uma pessoa"})
    await _say(tenant, instance, "5511910000006", "quero falar com um humano")

    async def paused() -> bool:
        conversation = ok_json(await tenant.client.get(f"/api/v1/conversations/{conversation_id}"))
        return bool(conversation["is_paused"])

    await eventually(paused, bool)
    assert len(openai_server.requests_to("/chat/completions")) == 4  # no answer after handoff


async def test_without_a_provider_the_agent_says_it_is_off(
    tenant: Tenant, settings: Settings
) -> None:
    from tests.fixtures.app import in_process_api

    offline = settings.model_copy(update={"ai_base_url": None})
    async with in_process_api(offline, tenant.api_key) as (_, client):
        company = (await client.get("/api/v1/company")).json()
        ready = (await client.get("/readyz")).json()
    assert company["ai_status"]["available"] is False
    assert "ZAPFLOW_AI_BASE_URL" in company["ai_status"]["reason"]
    assert ready["features"]["ai_agent"].startswith("disabled")
    bad = await tenant.client.patch("/api/v1/company", json={"ai_settings": {"temperature": 5}})
    assert bad.status_code == 422 and "temperature" in bad.text


async def test_a_flow_ai_reply_node_answers_with_the_agent(
    tenant: Tenant, openai_server: OpenAIServer, provider_server: ProviderServer
) -> None:
    from tests.test_flows_runs import ended, published, start_run

    _, conversation_id = await start_conversation(tenant, "5511910000007")
    await _enable_ai(tenant)
    document = {
        "name": "ai step",
        "start": "ai",
        "nodes": [
            {"id": "ai", "type": "ai_reply", "instructions": "Ofereça o plano anual.",
             "variable": "answer", "next": "done", "on_failure": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip
    flow_id = await published(tenant.client, document)
    openai_server.queue_reply("Temos o plano anual com 20% de desconto!")
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    run = await start_run(tenant.client, flow_id, conversation["contact_id"])
    finished = await ended(tenant.client, run["id"])
    assert finished["status"] == "completed", finished
    assert finished["variables"]["answer"] == "Temos o plano anual com 20% de desconto!"
    [request] = openai_server.requests_to("/chat/completions")
    assert request.json["messages"][1] == {"role": "system", "content": "Ofereça o plano anual."}
    assert "tools" not in request.json
    await eventually(
        lambda: _messages(tenant, conversation_id),
        lambda ms: ms[-1]["body"] == "Temos o plano anual com 20% de desconto!",
    )
