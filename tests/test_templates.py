"""Message templates on the real stack: a sync from a fake Graph API with Meta's page shapes
(cursors, ``paging.next`` only while more remain), the list's filters, the status and quality
webhooks stored through the inbox, creation and deletion at Meta (its validation error as a
422), and the check of a send's parameters against the components."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.campaigns import cloud_number
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import cloud_delivery, cloud_text, eventually, post_cloud, sign
from zapflow.db import SessionFactory
from zapflow.errors import Unprocessable
from zapflow.models import Template, TemplateStatus
from zapflow.services.templates import check_usable, components_for

pytestmark = pytest.mark.usefixtures("worker")

POSITIONAL = {
    "name": "promo",
    "language": "pt_BR",
    "status": "APPROVED",
    "category": "MARKETING",
    "parameter_format": "POSITIONAL",
    "components": [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://x/a.png"]}},
        {"type": "BODY", "text": "Oi {{1}}, seu cupom {{2}}",
         "example": {"body_text": [["Ana", "X1"]]}},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Ver", "url": "https://loja.example/{{1}}"}]},
    ],
    "quality_score": {"score": "GREEN", "date": 1733150000},
}  # fmt: skip
NAMED = {
    "name": "pedido",
    "language": "pt_BR",
    "status": "APPROVED",
    "category": "UTILITY",
    "parameter_format": "NAMED",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Pedido {{order}}"},
        {"type": "BODY", "text": "Olá {{first_name}}, seu pedido {{order}} saiu."},
    ],
}


def graph_template(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, "id": str(uuid.uuid4().int)[:15], **changes}


async def synced(tenant: Tenant, provider: ProviderServer, templates: list[dict[str, Any]],
                 **settings: Any) -> dict[str, Any]:  # fmt: skip
    instance = await cloud_number(tenant, **settings)
    provider.templates[instance["settings"]["waba_id"]] = templates
    response = await tenant.client.post(
        "/api/v1/templates/sync", json={"instance_id": instance["id"]}
    )
    assert response.status_code == 200, response.text
    return instance


async def test_sync_reads_every_page_and_filters(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    many = [graph_template(POSITIONAL, name=f"promo_{i:03}") for i in range(205)]
    paused = graph_template(NAMED, status="PAUSED", rejected_reason="NONE")
    instance = await synced(tenant, provider_server, [*many, paused])
    pages = [r for r in provider_server.requests if r.path.endswith("/message_templates")]
    # 100 + 100 + 6, following the cursors (distinct: a scheduled sync may read them too)
    assert len({r.query for r in pages}) == 3
    assert any("after=cursor100" in r.query for r in pages) and "fields=" in pages[0].query
    listed = (await tenant.client.get("/api/v1/templates")).json()["data"]
    assert len(listed) == 206
    approved = await tenant.client.get("/api/v1/templates", params={"status": "APPROVED"})
    assert len(approved.json()["data"]) == 205
    utility = await tenant.client.get(
        "/api/v1/templates", params={"category": "utility", "instance_id": instance["id"]}
    )
    [one] = utility.json()["data"]
    assert (one["name"], one["status"], one["parameter_format"]) == ("pedido", "PAUSED", "NAMED")
    assert listed[1]["name"] == "promo_000" and listed[1]["quality"] == "GREEN"
    # a template Meta no longer lists is kept as DELETED
    provider_server.templates[instance["settings"]["waba_id"]] = many[:5]
    response = await tenant.client.post(
        "/api/v1/templates/sync", json={"instance_id": instance["id"]}
    )
    assert response.json()["synced"] == 5
    deleted = await tenant.client.get("/api/v1/templates", params={"status": "DELETED"})
    assert len(deleted.json()["data"]) == 201


async def test_sync_refuses_numbers_without_an_account(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    evolution = await tenant.client.post(
        "/api/v1/instances",
        json={"name": "E", "provider": "evolution",
              "evolution_instance": "e-" + uuid.uuid4().hex[:6], "api_key": "k"},
    )  # fmt: skip
    response = await tenant.client.post(
        "/api/v1/templates/sync", json={"instance_id": evolution.json()["id"]}
    )
    assert response.status_code == 422 and "Evolution" in response.text
    mine = await cloud_number(tenant)
    theirs = await other_tenant.client.post(
        "/api/v1/templates/sync", json={"instance_id": mine["id"]}
    )
    assert theirs.status_code == 422  # as any body naming another company's object
    assert theirs.json()["error"]["message"].startswith("instance_id: no such")


def _template_webhook(account: str, field: str, value: dict[str, Any]) -> dict[str, Any]:
    change = {"field": field, "value": value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": account, "time": 1, "changes": [change]}],
    }


async def test_status_and_quality_webhooks_go_through_the_inbox(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    promo = graph_template(POSITIONAL)
    instance = await synced(tenant, provider_server, [promo])
    account = instance["settings"]["waba_id"]
    status = _template_webhook(
        account,
        "message_template_status_update",
        {"event": "PAUSED", "message_template_id": int(promo["id"]),
         "message_template_name": "promo", "message_template_language": "pt_BR", "reason": "NONE",
         "other_info": {"title": "FIRST_PAUSE", "description": "Paused for 3 hours: low quality"}},
    )  # fmt: skip
    quality = _template_webhook(
        account,
        "message_template_quality_update",
        {"previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
         "message_template_id": int(promo["id"]), "message_template_name": "promo",
         "message_template_language": "pt_BR"},
    )  # fmt: skip
    for body in (status, quality, status):  # the redelivery is one inbox row
        raw = orjson.dumps(body)
        headers = {"content-type": "application/json", "x-hub-signature-256": sign(raw)}
        response = await tenant.client.post(instance["webhook_url"], content=raw, headers=headers)
        assert response.status_code == 200, response.text

    async def template() -> dict[str, Any]:
        [row] = (await tenant.client.get("/api/v1/templates")).json()["data"]
        return dict(row)

    row = await eventually(template, lambda t: t["status"] == "PAUSED" and t["quality"] == "YELLOW")
    assert row["reason"] == "Paused for 3 hours: low quality"
    async with sessions() as session:
        kinds = await session.execute(
            text("SELECT payload->>'kind', status FROM inbox_events WHERE company_id = :c"),
            {"c": uuid.UUID(tenant.id)},
        )
        assert sorted(kinds.all()) == [("template", "processed"), ("template", "processed")]


async def test_create_and_delete_at_meta(
    tenant: Tenant, other_tenant: Tenant, provider_server: ProviderServer
) -> None:
    instance = await cloud_number(tenant)
    body = {
        "instance_id": instance["id"],
        "name": "boas_vindas",
        "language": "pt_BR",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Olá {{1}}!", "example": {"body_text": [["Ana"]]}}],
    }
    created = await tenant.client.post("/api/v1/templates", json=body)
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["graph_id"] is not None) == ("PENDING", True)
    refused = await tenant.client.post(
        "/api/v1/templates",
        json={**body, "name": "vazio", "components": [{"type": "FOOTER", "text": "x"}]},
    )
    assert refused.status_code == 422
    assert "Add a body to the template." in refused.json()["error"]["message"]
    assert refused.json()["error"]["details"]["error_subcode"] == 2388042
    bad_name = await tenant.client.post("/api/v1/templates", json={**body, "name": "Com Espaço"})
    assert bad_name.status_code == 422
    template_id = created.json()["id"]
    assert (await other_tenant.client.delete(f"/api/v1/templates/{template_id}")).status_code == 404
    assert (await tenant.client.delete(f"/api/v1/templates/{template_id}")).status_code == 204
    assert provider_server.templates[instance["settings"]["waba_id"]] == []
    deleted = await tenant.client.get("/api/v1/templates", params={"status": "DELETED"})
    assert [t["id"] for t in deleted.json()["data"]] == [template_id]


def _template(graph: dict[str, Any], status: TemplateStatus = TemplateStatus.APPROVED) -> Template:
    return Template(
        company_id=uuid.uuid4(), instance_id=uuid.uuid4(), name=graph["name"], language="pt_BR",
        parameter_format=graph["parameter_format"], components=graph["components"], status=status,
        reason="Paused for 3 hours: low quality" if status != TemplateStatus.APPROVED else None,
    )  # fmt: skip


def _refusal(template: Template, values: dict[str, Any]) -> str:
    with pytest.raises(Unprocessable) as refused:
        components_for(template, values)
    return str(refused.value.details["field"])


def test_parameters_are_checked_against_the_components() -> None:
    promo, pedido = _template(POSITIONAL), _template(NAMED)
    good = {"header": "https://cdn.example/a.png", "body": ["Ana", "X1"], "buttons": {"0": "X1"}}
    header, body, button = components_for(promo, good)
    assert header["parameters"] == [
        {"type": "image", "image": {"link": "https://cdn.example/a.png"}}
    ]
    assert body["parameters"][1] == {"type": "text", "text": "X1"}
    assert (button["sub_type"], button["index"]) == ("url", "0")
    assert _refusal(promo, {**good, "body": ["Ana"]}) == "template.parameters.body"
    assert _refusal(promo, {**good, "body": ["Ana", ""]}) == "template.parameters.body.2"
    assert (
        _refusal(promo, {**good, "header": "http://cdn.example/a.png"})
        == "template.parameters.header"
    )
    assert _refusal(promo, {**good, "buttons": {}}) == "template.parameters.buttons.0"
    assert _refusal(promo, {**good, "footer": "x"}) == "template.parameters.footer"
    named = components_for(pedido, {"header": "42", "body": {"first_name": "Ana", "order": "42"}})
    assert named[1]["parameters"][0] == {
        "type": "text",
        "parameter_name": "first_name",
        "text": "Ana",
    }
    assert named[0]["parameters"][0]["parameter_name"] == "order"
    missing = {"header": "42", "body": {"order": "42"}}
    assert _refusal(pedido, missing) == "template.parameters.body.first_name"
    assert _refusal(pedido, {"header": "42", "body": ["Ana", "42"]}) == "template.parameters.body"
    with pytest.raises(Unprocessable, match="PAUSED: Paused for 3 hours"):
        check_usable(_template(POSITIONAL, TemplateStatus.PAUSED))


async def test_follow_ups_check_the_numbers_synced_templates(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    paused = graph_template(NAMED, name="pausado", status="PAUSED")
    instance = await synced(tenant, provider_server, [graph_template(POSITIONAL), paused])
    wa_id = "5511" + str(uuid.uuid4().int)[:9]
    hello = cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", "oi", int(time.time()))
    delivery = cloud_delivery(instance["phone_number_id"], hello)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200
    conversations = await eventually(
        lambda: tenant.client.get("/api/v1/conversations"), lambda r: len(r.json()["data"]) == 1
    )
    followups = f"/api/v1/conversations/{conversations.json()['data'][0]['id']}/followups"

    async def refused(template: dict[str, Any]) -> dict[str, Any]:
        response = await tenant.client.post(followups, json={"after": "P1D", "template": template})
        assert response.status_code == 422, response.text
        return dict(response.json()["error"])

    wrong = await refused({"name": "promo", "language": "pt_BR", "params": ["Ana"]})
    # promo has an image header a follow-up cannot fill, and two body parameters
    assert wrong["details"]["field"] == "steps[0].template.params.header"
    stopped = await refused({"name": "pausado", "language": "pt_BR"})
    assert "PAUSED" in stopped["message"]
    unknown = await refused({"name": "retomar_contato"})
    assert "sync them first" in unknown["message"]


async def test_flows_publish_send_template_nodes_checked_against_synced_templates(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    aviso = {**POSITIONAL, "name": "aviso", "components": [{"type": "BODY", "text": "Oi {{1}}"}]}
    paused = graph_template(NAMED, name="pausado", status="PAUSED")
    await synced(tenant, provider_server, [graph_template(aviso), paused])

    async def publish(name: str, params: list[str]) -> Any:
        node = {"id": "aviso1", "type": "send_template", "name": name, "language": "pt_BR",
                "params": params, "next": "fim"}  # fmt: skip
        nodes = [node, {"id": "fim", "type": "end"}]
        document = {"name": f"Flow {name}", "start": "aviso1", "nodes": nodes}
        flow = await tenant.client.post("/api/v1/flows", json=document)
        assert flow.status_code == 201, flow.text
        return await tenant.client.post(f"/api/v1/flows/{flow.json()['id']}/publish")

    wrong = (await publish("aviso", ["{{contact.name}}", "x"])).json()["error"]
    assert wrong["message"].startswith("aviso1.params.body: takes 1 parameters")
    assert wrong["details"][0] | {"message": ""} == {
        "node_id": "aviso1",
        "field": "params.body",
        "code": "template",
        "message": "",
    }
    stopped = (await publish("pausado", [])).json()["error"]
    assert stopped["message"].startswith("aviso1.name: ") and "PAUSED" in stopped["message"]
    unknown = (await publish("retomar", [])).json()["error"]
    assert "sync them first" in unknown["message"] and unknown["details"][0]["field"] == "name"
    assert (await publish("aviso", ["{{contact.name}}"])).status_code == 201
