"""Interactive messages: an agent's reply buttons, list and CTA URL within Meta's limits (422s
naming the field), sent as Cloud API interactive messages and as numbered text on Evolution; a
flow's buttons driven end to end by ``button_reply`` webhooks, a flow started by a quick-reply
payload, and the simulator answering by button id."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    create_evolution_instance,
    eventually,
    post_cloud,
    start_conversation,
)
from tests.test_flows_runs import published
from zapflow.whatsapp.interactive import cloud_interactive, numbered_text
from zapflow.whatsapp.simulate import evolution_text

pytestmark = pytest.mark.usefixtures("worker")

BUTTONS = {
    "type": "button",
    "body": "Podemos confirmar seu pedido?",
    "buttons": [{"id": "yes", "title": "Sim"}, {"id": "no", "title": "Não"}],
}
LIST = {
    "type": "list",
    "body": "Escolha um plano",
    "button": "Planos",
    "sections": [
        {"title": "Mensal", "rows": [{"id": "m", "title": "Mensal", "description": "R$ 49"}]},
        {"title": "Anual", "rows": [{"id": "a", "title": "Anual"}]},
    ],
}
CTA = {
    "type": "cta_url",
    "body": "Catálogo",
    "display_text": "Abrir",
    "url": "https://example.com/c",
}


def test_cloud_shape_and_numbered_text() -> None:
    assert cloud_interactive(BUTTONS)["action"]["buttons"][1] == {
        "type": "reply",
        "reply": {"id": "no", "title": "Não"},
    }
    assert cloud_interactive(LIST)["action"]["sections"][0]["rows"][0]["description"] == "R$ 49"
    assert cloud_interactive(CTA)["action"] == {
        "name": "cta_url",
        "parameters": {"display_text": "Abrir", "url": "https://example.com/c"},
    }
    assert numbered_text(BUTTONS) == "Podemos confirmar seu pedido?\n1. Sim\n2. Não"


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


REFUSED = [
    (_with(BUTTONS, buttons=[{"id": f"b{i}", "title": f"B{i}"} for i in range(4)]), "buttons"),
    (_with(BUTTONS, buttons=[{"id": "yes", "title": "x" * 21}]), "title"),
    (_with(BUTTONS, buttons=[{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]), "unique"),
    (_with(BUTTONS, body="x" * 1025), "body"),
    (_with(BUTTONS, buttons=None), "buttons"),
    (_with(LIST, sections=[{"rows": [{"id": f"r{i}", "title": "r"} for i in range(11)]}]), "rows"),
    (_with(LIST, sections=[{"title": "a", "rows": [{"id": "r", "title": "x" * 25}]}]), "title"),
    (_with(LIST, button="x" * 21), "button"),
    (_with(LIST, sections=[{"rows": [{"id": i, "title": i}]} for i in "ab"]), "title"),
    (_with(CTA, url="ftp://example.com"), "url"),
    (_with(CTA, display_text=None), "display_text"),
]


async def conversation_on_cloud(tenant: Tenant) -> tuple[str, str]:
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    _, conversation_id = await start_conversation(tenant, wa_id)
    return wa_id, conversation_id


async def send(tenant: Tenant, conversation_id: str, spec: dict[str, Any]) -> httpx.Response:
    return await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"type": "interactive", "interactive": spec},
    )


@pytest.mark.parametrize(("interactive", "field"), REFUSED)
async def test_limits_are_422s_naming_the_field(
    interactive: dict[str, Any], field: str, tenant: Tenant
) -> None:
    _, conversation_id = await conversation_on_cloud(tenant)
    response = await send(tenant, conversation_id, interactive)
    assert response.status_code == 422, response.text
    assert field in response.text


def sent_interactive(provider: ProviderServer, wa_id: str) -> list[dict[str, Any]]:
    return [r.json for r in provider.sent_to(wa_id) if r.json.get("type") == "interactive"]


@pytest.mark.parametrize("spec", [BUTTONS, LIST, CTA], ids=["button", "list", "cta_url"])
async def test_cloud_instance_sends_the_interactive_message(
    spec: dict[str, Any], tenant: Tenant, provider_server: ProviderServer
) -> None:
    wa_id, conversation_id = await conversation_on_cloud(tenant)
    response = await send(tenant, conversation_id, spec)
    assert response.status_code == 202, response.text
    message = response.json()
    assert (message["type"], message["body"]) == ("interactive", numbered_text(spec))
    assert "fallback" not in message["payload"]["outbound"]
    [sent] = await eventually(
        lambda: _value(sent_interactive(provider_server, wa_id)), lambda s: len(s) == 1
    )
    assert sent["interactive"] == cloud_interactive(spec)


async def test_evolution_instance_sends_numbered_text_and_says_so(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    instance = await create_evolution_instance(tenant)
    body = {
        "event": "messages.upsert",
        "instance": instance["evolution_instance"],
        "apikey": "evo-key",
        "data": {
            "key": {"remoteJid": "5531990001111@s.whatsapp.net", "fromMe": False, "id": "EVO1"},
            "pushName": "Rita",
            "message": {"conversation": "oi"},
            "messageTimestamp": int(time.time()),
        },
    }
    assert (await tenant.client.post(instance["webhook_url"], json=body)).status_code == 200

    async def listed() -> list[dict[str, Any]]:
        return list((await tenant.client.get("/api/v1/conversations")).json()["data"])

    rows = await eventually(listed, lambda found: len(found) == 1)
    response = await send(tenant, rows[0]["id"], BUTTONS)
    assert response.status_code == 202, response.text
    assert response.json()["payload"]["outbound"]["fallback"] == "numbered_text"
    [sent] = await eventually(
        lambda: _value(provider_server.sent_to("5531990001111")), lambda s: len(s) == 1
    )
    assert sent.path.startswith("/message/sendText/")
    assert sent.json["text"] == numbered_text(BUTTONS)

    # the customer answers by number: stored as the button it names ("2": Não), what was typed
    # beside it; a number out of the list stays text
    for key, typed in (("EVO2", "2"), ("EVO3", "7")):
        data = {**body["data"], "key": {**body["data"]["key"], "id": key}}
        answer = {**body, "data": {**data, "message": {"conversation": typed}}}
        assert (await tenant.client.post(instance["webhook_url"], json=answer)).status_code == 200
    path = f"/api/v1/conversations/{rows[0]['id']}/messages"

    async def thread() -> list[dict[str, Any]]:
        return list((await tenant.client.get(path)).json()["data"])

    stored = await eventually(thread, lambda found: len(found) == 4)
    by_key = {m["message_key_id"]: m for m in stored}
    chosen = by_key["EVO2"]
    assert (chosen["type"], chosen["body"]) == ("interactive", "Não")
    assert chosen["payload"] == {
        "interactive_type": "button_reply",
        "id": "no",
        "title": "Não",
        "typed": "2",
        "answers": response.json()["id"],
    }
    assert (by_key["EVO3"]["type"], by_key["EVO3"]["body"]) == ("text", "7")


async def _value(value: Any) -> Any:
    return value


# --- flows ---------------------------------------------------------------------------------

CONFIRM_FLOW: dict[str, Any] = {
    "name": "Confirm order",
    "triggers": [{"type": "keyword", "keywords": ["pedido", "CONFIRM_PAYLOAD"]}],
    "start": "offer",
    "nodes": [
        {
            "id": "offer",
            "type": "send_buttons",
            "text": "Confirmamos seu pedido?",
            "buttons": [{"id": "yes", "title": "Sim"}, {"id": "no", "title": "Não"}],
            "next": "answer",
        },
        {
            "id": "answer",
            "type": "ask",
            "variable": "choice",
            "validation": "choice",
            "choices": ["yes", "no"],
            "timeout": "60s",
            "on_timeout": "done",
            "next": "which",
        },
        {
            "id": "which",
            "type": "condition",
            "branches": [{"when": "choice == 'yes'", "next": "confirmed"}],
            "default": "cancelled",
        },
        {"id": "confirmed", "type": "send_text", "text": "Pedido confirmado!", "next": "done"},
        {"id": "cancelled", "type": "send_text", "text": "Pedido cancelado.", "next": "done"},
        {"id": "done", "type": "end"},
    ],
}


def button_reply(wa_id: str, button_id: str, title: str) -> dict[str, Any]:
    message = {
        "from": wa_id,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}},
    }
    return {"contacts": [{"profile": {"name": "Maria"}, "wa_id": wa_id}], "messages": [message]}


def quick_reply(wa_id: str, payload: str, text: str) -> dict[str, Any]:
    message = {
        "from": wa_id,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "button",
        "button": {"payload": payload, "text": text},
    }
    return {"contacts": [{"profile": {"name": "Maria"}, "wa_id": wa_id}], "messages": [message]}


async def say(tenant: Tenant, instance: dict[str, Any], change: dict[str, Any]) -> None:
    delivery = cloud_delivery(instance["phone_number_id"], change)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200


def texts_to(provider: ProviderServer, wa_id: str) -> list[str]:
    return [r.json["text"]["body"] for r in provider.sent_to(wa_id) if "text" in r.json]


@pytest.mark.parametrize(
    ("tap", "answer"), [("yes", "Pedido confirmado!"), ("no", "Pedido cancelado.")]
)
async def test_flow_buttons_driven_by_button_reply_webhooks(
    tap: str, answer: str, tenant: Tenant, provider_server: ProviderServer
) -> None:
    await published(tenant.client, CONFIRM_FLOW)
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    instance, conversation_id = await start_conversation(tenant, wa_id)
    await say(tenant, instance, cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", "meu pedido"))
    [offer] = await eventually(
        lambda: _value(sent_interactive(provider_server, wa_id)), lambda s: len(s) == 1, 30
    )
    assert [b["reply"]["id"] for b in offer["interactive"]["action"]["buttons"]] == ["yes", "no"]

    title = "Sim" if tap == "yes" else "Não"
    await say(tenant, instance, button_reply(wa_id, tap, title))
    await eventually(lambda: _value(texts_to(provider_server, wa_id)), lambda t: answer in t, 30)

    page = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages")).json()
    [tapped] = [m for m in page["data"] if m["type"] == "interactive" and not m["from_me"]]
    assert (tapped["payload"]["id"], tapped["payload"]["title"]) == (tap, title)
    assert tapped["body"] == title


async def test_on_evolution_a_typed_number_answers_the_choice_at_that_place(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    """Baileys numbers get the buttons as numbered text; the customer's "1" is the first
    button sent (Sim: yes), though the ask lists its choices the other way round."""
    flow = {**CONFIRM_FLOW, "nodes": [dict(n) for n in CONFIRM_FLOW["nodes"]]}
    flow["nodes"][1]["choices"] = ["no", "yes"]
    await published(tenant.client, flow)
    await numbered_choice_answered(tenant, provider_server, "1")


async def numbered_choice_answered(
    tenant: Tenant, provider_server: ProviderServer, answer: str
) -> str:
    """An Evolution customer starts CONFIRM_FLOW (published), gets the numbered text and
    types ``answer``: confirmed, and the thread shows the button it chose. The customer's
    phone."""
    instance = await create_evolution_instance(tenant)
    phone = "55319" + str(uuid.uuid4().int)[:8]
    name = instance["evolution_instance"]
    start = evolution_text(name, "evo-key", phone, f"EVO{uuid.uuid4().hex[:8]}", "meu pedido")
    assert (await tenant.client.post(instance["webhook_url"], json=start)).status_code == 200

    def texts() -> list[str]:
        return [r.json["text"] for r in provider_server.sent_to(phone)]

    [offer] = await eventually(lambda: _value(texts()), lambda t: len(t) == 1, 30)
    assert offer == "Confirmamos seu pedido?\n1. Sim\n2. Não"
    typed_key = f"EVO{uuid.uuid4().hex[:8]}"
    typed = evolution_text(name, "evo-key", phone, typed_key, answer)
    assert (await tenant.client.post(instance["webhook_url"], json=typed)).status_code == 200
    await eventually(lambda: _value(texts()), lambda t: "Pedido confirmado!" in t, 30)
    # the thread shows the number as the button it chose, as the flow read it
    listed = (await tenant.client.get("/api/v1/conversations")).json()["data"]
    [conversation] = [c for c in listed if c["remote_jid"] == f"{phone}@s.whatsapp.net"]
    path = f"/api/v1/conversations/{conversation['id']}/messages"
    thread = (await tenant.client.get(path)).json()["data"]
    [chosen] = [m for m in thread if m["message_key_id"] == typed_key]
    assert (chosen["type"], chosen["payload"]["id"], chosen["payload"]["typed"]) == (
        "interactive", "yes", answer,
    )  # fmt: skip
    return phone


async def test_quick_reply_payload_starts_a_flow(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    await published(tenant.client, CONFIRM_FLOW)
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    instance, conversation_id = await start_conversation(tenant, wa_id)
    await say(tenant, instance, quick_reply(wa_id, "CONFIRM_PAYLOAD", "Quero confirmar"))
    await eventually(
        lambda: _value(sent_interactive(provider_server, wa_id)), lambda s: len(s) == 1, 30
    )
    page = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages")).json()
    [tapped] = [m for m in page["data"] if m["type"] == "button"]
    assert (tapped["payload"]["payload"], tapped["body"]) == ("CONFIRM_PAYLOAD", "Quero confirmar")


async def test_simulator_accepts_button_ids(tenant: Tenant) -> None:
    created = await tenant.client.post("/api/v1/flows", json=CONFIRM_FLOW)
    flow_id = created.json()["id"]
    result = await tenant.client.post(f"/api/v1/flows/{flow_id}/simulate", json={"replies": ["no"]})
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["status"] == "completed"
    assert body["variables"]["choice"] == "no"
    assert body["sent"][0]["type"] == "interactive"
    assert body["sent"][-1]["text"] == "Pedido cancelado."
