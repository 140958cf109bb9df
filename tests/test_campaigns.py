"""Campaigns on the real stack with the fake provider: each recipient once with its own
parameters (a missing one fails that recipient only), opt-outs (API and keyword, answered),
pause / resume / cancel, per-recipient refusals with Meta's reason, the pair rate limit deferring
one recipient, stats and live progress, no customer text in the workflow's history, and
contacts known only by a BSUID (a CSV audience's column) sent to by it where the number can."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.campaigns import (
    audience,
    campaign,
    campaign_body,
    check_campaign,
    create,
    finished,
    number_with_templates,
    provider_successes,
    stats,
)
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    EventListener,
    cloud_delivery,
    cloud_text,
    create_evolution_instance,
    eventually,
    post_cloud,
)
from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.temporal import connect

pytestmark = pytest.mark.usefixtures("worker")


async def recipients(tenant: Tenant, campaign_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await tenant.client.get(
        f"/api/v1/campaigns/{campaign_id}/recipients", params={"limit": 500, **params}
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_each_recipient_gets_its_own_parameters_once(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory, settings: Settings
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    prefix = await audience(sessions, tenant.id, 30, "vip", coupon_every=3)
    contacts = (await tenant.client.get("/api/v1/contacts", params={"tag": "vip"})).json()["data"]
    opted = next(c for c in contacts if c["name"] == "Cliente 3")
    assert (
        await tenant.client.put(f"/api/v1/contacts/{opted['id']}/opt-out", json={})
    ).status_code == 204
    count = await tenant.client.get("/api/v1/campaigns/audience", params={"tag": "vip"})
    assert count.json() == {"contacts": 30, "opted_out": 1, "no_phone": 0}
    ecosystem = "(#131049) This message was not delivered to maintain healthy ecosystem engagement."
    refusal = {"error": {"message": ecosystem, "code": 131049}}
    provider_server.fail_next(1, status=400, body=refusal, to=f"{prefix}00006")
    async with EventListener(tenant.client) as listener:
        made = await create(tenant, campaign_body(instance, "vip", throughput=50))
        done = await finished(tenant, made["id"])
        await listener.wait_for(
            "campaign.progress", lambda es: any(e["data"]["status"] == "completed" for e in es)
        )
    assert done["status"] == "completed"
    rows = await recipients(tenant, made["id"])
    by_status = {s: [r for r in rows if r["status"] == s] for s in ("sent", "failed", "excluded")}
    # contacts 3, 6, ... 30 have a coupon; 3 opted out; the others lack the second parameter
    assert [r["reason"] for r in by_status["excluded"]] == ["opted_out"]
    missing = [r for r in by_status["failed"] if "custom_fields.cupom" in (r["reason"] or "")]
    assert len(missing) == 20
    assert missing[0]["reason"].startswith("message.parameters.body.2")
    meta = [r for r in by_status["failed"] if "131049" in (r["reason"] or "")]
    assert len(meta) == 1 and len(by_status["sent"]) == 8
    assert await check_campaign(sessions, provider_server, made["id"], prefix) == []
    sent = [
        r.json
        for r in provider_server.requests
        if isinstance(r.json, dict) and str(r.json.get("to", "")).startswith(prefix)
    ]
    parameters = sent[-1]["template"]["components"][0]["parameters"]
    assert parameters[0]["text"].startswith("Cliente ") and parameters[1]["text"].startswith("C")
    figures = await stats(tenant, made["id"])
    assert figures["counts"]["sent"] == 8 and figures["reasons"]["excluded"] == {"opted_out": 1}
    client = await connect(settings)
    history = await client.get_workflow_handle(done["workflow_id"]).fetch_history()
    assert "Cliente" not in history.to_json() and "C30" not in history.to_json()


async def test_pause_resume_and_cancel(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    prefix = await audience(sessions, tenant.id, 60, "slow")
    made = await create(tenant, campaign_body(instance, "slow", throughput=10))

    def sent() -> int:
        return sum(provider_successes(provider_server, prefix).values())

    async def sends() -> int:
        return sent()

    await eventually(sends, lambda n: n >= 5, within=30)
    paused = await tenant.client.post(f"/api/v1/campaigns/{made['id']}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    await asyncio.sleep(1.0)  # sends in flight when the pause came finish
    at_pause = sent()
    await asyncio.sleep(1.5)
    assert sent() == at_pause, "a paused campaign kept sending"
    assert (await tenant.client.post(f"/api/v1/campaigns/{made['id']}/pause")).status_code == 409
    resumed = await tenant.client.post(f"/api/v1/campaigns/{made['id']}/resume")
    assert resumed.json()["status"] == "running"
    await eventually(sends, lambda n: n >= at_pause + 5, within=30)
    cancelled = await tenant.client.post(f"/api/v1/campaigns/{made['id']}/cancel")
    assert cancelled.status_code == 200
    done = await finished(tenant, made["id"])
    assert done["status"] == "cancelled" and done["finished_at"]
    rows = await recipients(tenant, made["id"])
    left = [r for r in rows if r["status"] == "cancelled"]
    assert left and all(r["reason"] == "campaign cancelled" for r in left)
    # messages queued with their batch but never claimed are not left pending in the chats
    pending = text(
        "SELECT count(*) FROM messages m JOIN campaign_recipients r ON r.message_id = m.id"
        " WHERE r.campaign_id = :id AND m.status = 'pending'"
    )
    async with sessions() as session:
        assert (await session.execute(pending, {"id": uuid.UUID(made["id"])})).scalar_one() == 0
    assert await check_campaign(sessions, provider_server, made["id"], prefix) == []


async def test_pair_rate_limit_defers_only_that_recipient(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    prefix = await audience(sessions, tenant.id, 3, "pair")
    limited = "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    pair = {"error": {"message": limited, "code": 131056}}
    provider_server.fail_next(1, status=400, body=pair)
    made = await create(tenant, campaign_body(instance, "pair", throughput=20))

    async def deferred() -> list[dict[str, Any]]:
        return await recipients(tenant, made["id"], status="queued")

    [waiting] = await eventually(deferred, lambda rows: len(rows) == 1, within=20)
    assert waiting["reason"].startswith("deferred: (#131056)")
    assert (await campaign(tenant, made["id"]))["status"] == "running"
    figures = await stats(tenant, made["id"])
    assert figures["counts"]["sent"] == 2 and len(figures["reasons"]["deferred"]) == 1
    assert sum(provider_successes(provider_server, prefix).values()) == 2
    await tenant.client.post(f"/api/v1/campaigns/{made['id']}/cancel")
    await finished(tenant, made["id"])


async def test_refusals_before_anything_is_sent(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    body = campaign_body(instance, "x")
    unknown = {**body, "message": {**body["message"], "template": {"name": "nope"}}}
    refused = await tenant.client.post("/api/v1/campaigns", json=unknown)
    assert (
        refused.status_code == 422
        and refused.json()["error"]["details"]["field"] == "message.template"
    )
    bad_field = {**body, "message": {**body["message"], "parameters": {"body": [{"field": "cpf"}]}}}
    refused = await tenant.client.post("/api/v1/campaigns", json=bad_field)
    assert refused.json()["error"]["details"]["field"] == "message.parameters.body.1.field"
    one = {**body, "message": {**body["message"], "parameters": {"body": [{"value": "x"}]}}}
    refused = await tenant.client.post("/api/v1/campaigns", json=one)
    assert refused.json()["error"]["details"]["field"] == "template.parameters.body"
    both = {**body, "message": {**body["message"], "text": "oi"}}
    assert (await tenant.client.post("/api/v1/campaigns", json=both)).status_code == 422
    account = instance["settings"]["waba_id"]
    provider_server.templates[account][0]["status"] = "PAUSED"
    await tenant.client.post("/api/v1/templates/sync", json={"instance_id": instance["id"]})
    paused = await tenant.client.post("/api/v1/campaigns", json=body)
    assert paused.status_code == 422 and "PAUSED" in paused.json()["error"]["message"]


async def test_a_keyword_opts_out_and_is_answered(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    wa_id = "5511" + str(uuid.uuid4().int)[:9]
    message = cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", " Parar! ", int(time.time()))
    response = await post_cloud(
        tenant.client, instance["webhook_url"], cloud_delivery(instance["phone_number_id"], message)
    )
    assert response.status_code == 200

    async def confirmation() -> list[Any]:
        return provider_server.sent_to(wa_id)

    [answer] = await eventually(confirmation, lambda sent: len(sent) == 1, within=20)
    assert "não receberá mais" in answer.json["text"]["body"]
    contact = (await tenant.client.get("/api/v1/contacts", params={"q": wa_id})).json()["data"][0]
    state = (await tenant.client.get(f"/api/v1/contacts/{contact['id']}/opt-out")).json()
    assert (state["opted_out"], state["source"], state["reason"]) == (True, "keyword", "PARAR")
    count = await tenant.client.get("/api/v1/campaigns/audience", params={"q": wa_id})
    assert count.json()["opted_out"] == 1
    assert (
        await tenant.client.delete(f"/api/v1/contacts/{contact['id']}/opt-out")
    ).status_code == 204
    state = (await tenant.client.get(f"/api/v1/contacts/{contact['id']}/opt-out")).json()
    assert state["opted_out"] is False


async def test_a_keyword_changed_after_the_worker_cached_the_company_counts_at_once(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    # the worker keeps the company (its keywords) in memory: the PATCH's invalidation evicts it
    instance = await number_with_templates(tenant, provider_server)

    async def say(text: str) -> str:
        wa_id = "5511" + str(uuid.uuid4().int)[:9]
        change = cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", text, int(time.time()))
        delivery = cloud_delivery(instance["phone_number_id"], change)
        assert (
            await post_cloud(tenant.client, instance["webhook_url"], delivery)
        ).status_code == 200
        return wa_id

    async def stored(wa_id: str) -> list[Any]:
        found = await tenant.client.get("/api/v1/contacts", params={"q": wa_id})
        return list(found.json()["data"])

    first = await say("tchau")  # not a keyword yet: the worker caches the company's settings
    await eventually(lambda: stored(first), bool, within=20)
    patched = await tenant.client.patch(
        "/api/v1/company", json={"settings": {"opt_out_keywords": ["Tchau"]}}
    )
    assert patched.status_code == 200
    second = await say("Tchau!")

    async def confirmation() -> list[Any]:
        return provider_server.sent_to(second)

    [answer] = await eventually(confirmation, lambda sent: len(sent) == 1, within=20)
    assert "não receberá mais" in answer.json["text"]["body"]
    assert provider_server.sent_to(first) == []


async def test_a_text_campaign_fills_contact_fields(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    # the message Evolution numbers use (they have no templates): plain text with {{fields}}
    instance = await number_with_templates(tenant, provider_server)
    prefix = await audience(sessions, tenant.id, 3, "texto")
    body = campaign_body(instance, "texto", throughput=20, message={"text": "Olá {{name}}!"})
    made = await create(tenant, body)
    done = await finished(tenant, made["id"])
    assert done["status"] == "completed"
    sent = [
        r.json
        for r in provider_server.requests
        if isinstance(r.json, dict) and str(r.json.get("to", "")).startswith(prefix)
    ]
    assert sorted(s["text"]["body"] for s in sent) == [f"Olá Cliente {n}!" for n in (1, 2, 3)]
    assert sum(provider_successes(provider_server, prefix).values()) == 3
    assert await check_campaign(sessions, provider_server, made["id"], prefix) == []


async def test_contacts_known_only_by_bsuid_are_sent_by_it_on_cloud_and_excluded_elsewhere(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    bsuids = [f"BR.{uuid.uuid4().int % 10**16}" for _ in range(2)]
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"

    async def upload(*rows: str) -> dict[str, Any]:
        response = await tenant.client.post(
            "/api/v1/campaigns/audiences/csv",
            content="\n".join(["phone_number,name,bsuid,custom.cupom", *rows]).encode(),
            params={"list": "usernames"},
            headers={"content-type": "text/csv"},
        )
        assert response.status_code == 200, response.text
        return dict(response.json()["report"])

    report = await upload(f"{phone},Ana,,A1", f",Bia,{bsuids[0]},B1", f",Caio,{bsuids[1]},C1",
                          ",Dora,,D1")  # fmt: skip
    assert report["created"] == 3 and [(e["row"], e["field"]) for e in report["errors"]] == [
        (5, "phone_number")
    ]
    report = await upload(f",Bia Souza,{bsuids[0]},B2")  # the contact holding the BSUID
    assert (report["created"], report["updated"]) == (0, 1)
    evolution = await create_evolution_instance(tenant)
    for number, reached in ((instance, 3), (evolution, 1)):
        response = await tenant.client.post(
            "/api/v1/campaigns/preview",
            json={"instance_id": number["id"], "audience": {"tags": ["usernames"]}},
        )
        found = response.json()
        assert (found["recipients"], found["excluded"]["no_phone"]) == (reached, 3 - reached)
        params = {"tag": "usernames", "instance_id": number["id"]}
        count = await tenant.client.get("/api/v1/campaigns/audience", params=params)
        assert count.status_code == 200 and count.json()["no_phone"] == 3 - reached
    count = await tenant.client.get("/api/v1/campaigns/audience", params={"tag": "usernames"})
    assert count.json()["no_phone"] == 2  # no number given: every contact without a phone
    made = await create(tenant, campaign_body(instance, "usernames"))
    assert (await finished(tenant, made["id"]))["status"] == "completed"
    assert (await stats(tenant, made["id"]))["counts"]["sent"] == 3
    for bsuid in bsuids:  # Meta's `recipient`, once each
        [sent] = provider_server.sent_to(bsuid)
        assert "to" not in sent.json and sent.json["type"] == "template"
    assert len(provider_server.sent_to(phone.removeprefix("+"))) == 1
