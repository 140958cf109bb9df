"""Flow runs on the embedded stack, against the fake provider: the sample lead-qualification flow
end to end (replies, a retry, the ask timeout branch, a wait, deals, handoff), its simulation
giving the same transcript, versions, one run per conversation, cancel, http_request and
ai_reply failure branches, and the runs surviving the conversation's continue-as-new."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    eventually,
    ok_json,
    post_cloud,
    start_conversation,
)
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import Conversation, FlowRun, utc_now
from zapflow.services import flow_runs, flows
from zapflow.temporal import FLOW_ID, FLOW_VERSION, connect

pytestmark = pytest.mark.usefixtures("worker")
SAMPLE = Path(__file__).parent.parent / "examples" / "flows" / "lead_qualification.yaml"
GREETING = "Hi! I'm Acme's assistant. Two quick questions and I'll get you to the right person."
ASK_NAME = "What's your name?"


def sample(ask_timeout: str = "60s", wait: str = "1s", triggers: bool = False) -> dict[str, Any]:
    """The sample flow with test-sized durations (and, unless asked, no triggers: runs are
    started through the API)."""
    document: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    for node in document["nodes"]:
        if "timeout" in node:
            node["timeout"] = ask_timeout
        if node["type"] == "wait":
            node["duration"] = wait
    if not triggers:
        document["triggers"] = []
    return document


async def published(client: httpx.AsyncClient, document: dict[str, Any]) -> str:
    created = await client.post("/api/v1/flows", json=document)
    assert created.status_code == 201, created.text
    flow_id: str = created.json()["id"]
    assert (await client.post(f"/api/v1/flows/{flow_id}/publish")).status_code == 201
    return flow_id


async def sales_funnel(client: httpx.AsyncClient) -> dict[str, str]:
    stages = [{"name": n} for n in ("New", "Qualified", "Nurture")]
    response = await client.post("/api/v1/funnels", json={"name": "Sales", "stages": stages})
    assert response.status_code == 201, response.text
    return {s["name"]: s["id"] for s in response.json()["stages"]}


class Customer:
    """One WhatsApp customer of an instance: says things, reads what zapflow sent them."""

    def __init__(
        self, tenant: Tenant, instance: dict[str, Any], wa_id: str, provider: ProviderServer
    ) -> None:
        self.tenant = tenant
        self.instance = instance
        self.wa_id = wa_id
        self.provider = provider

    async def say(self, text: str) -> None:
        message = cloud_text(self.wa_id, f"wamid.{uuid.uuid4().hex}", text, int(time.time()))
        delivery = cloud_delivery(self.instance["phone_number_id"], message)
        response = await post_cloud(self.tenant.client, self.instance["webhook_url"], delivery)
        assert response.status_code == 200

    def received(self) -> list[str]:
        return [
            r.json["text"]["body"]
            for r in list(self.provider.requests)
            if isinstance(r.json, dict)
            and str(r.json.get("to", "")).lstrip("+") == self.wa_id
            and "text" in r.json  # the http_request test posts here a body without one
        ]

    async def wait_for(self, count: int, within: float = 30) -> list[str]:
        async def texts() -> list[str]:
            return self.received()

        return await eventually(texts, lambda t: len(t) >= count, within)


async def new_customer(tenant: Tenant, provider: ProviderServer) -> tuple[Customer, dict[str, Any]]:
    """A customer whose first message ("oi") opened a conversation; and that conversation."""
    wa_id = "55119" + str(uuid.uuid4().int)[:8]
    instance, conversation_id = await start_conversation(tenant, wa_id)
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    return Customer(tenant, instance, wa_id, provider), conversation


async def start_run(client: httpx.AsyncClient, flow_id: str, contact_id: str) -> dict[str, Any]:
    response = await client.post(f"/api/v1/flows/{flow_id}/runs", json={"contact_id": contact_id})
    assert response.status_code == 202, response.text
    return dict(response.json())


async def run_when(
    client: httpx.AsyncClient, run_id: str, check: Any, within: float = 30
) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        return dict(ok_json(await client.get(f"/api/v1/flow-runs/{run_id}")))

    return await eventually(read, check, within)


async def ended(client: httpx.AsyncClient, run_id: str, within: float = 30) -> dict[str, Any]:
    return await run_when(
        client, run_id, lambda r: r["status"] in ("completed", "failed", "cancelled"), within
    )


async def simulated(
    client: httpx.AsyncClient, flow_id: str, replies: list[str | None], **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/flows/{flow_id}/simulate", json={"replies": replies, **extra}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_sample_flow_qualifies_a_lead_and_hands_off(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    """Triggered by the first message of a new contact; a number asked again after a bad
    answer; a deal in the Qualified stage; the bot paused for a human."""
    stages = await sales_funnel(tenant.client)
    flow_id = await published(tenant.client, sample(triggers=True))
    customer, conversation = await new_customer(tenant, provider_server)
    assert await customer.wait_for(2) == [GREETING, ASK_NAME]
    await customer.say("Maria")
    assert (await customer.wait_for(3))[2].startswith("Nice to meet you, Maria!")
    await customer.say("lots")
    assert (await customer.wait_for(4))[3] == "Please answer with a number, like 3000."
    await customer.say("12000")
    texts = await customer.wait_for(5)

    [run] = (await tenant.client.get(f"/api/v1/flows/{flow_id}/runs")).json()["data"]
    run = await ended(tenant.client, run["id"])
    assert (run["status"], run["flow_version"], run["error"]) == ("completed", 1, None)
    assert run["variables"]["budget"] == 12000
    assert texts[4] == "Thanks, Maria! A specialist will take it from here."
    await customer.wait_for(5)
    assert len(customer.received()) == 5  # nothing sent twice

    deals = (await tenant.client.get("/api/v1/deals")).json()["data"]
    assert [(d["stage_id"], d["value"], d["contact"]["id"]) for d in deals] == [
        (stages["Qualified"], "12000.00", conversation["contact_id"])
    ]
    assert run["variables"]["deal_id"] == deals[0]["id"]
    after = (await tenant.client.get(f"/api/v1/conversations/{conversation['id']}")).json()
    assert after["is_paused"] is True
    contact = (await tenant.client.get(f"/api/v1/contacts/{conversation['contact_id']}")).json()
    assert contact["name"] == "Maria"

    simulation = await simulated(tenant.client, flow_id, ["Maria", "lots", "12000"], version=1)
    assert simulation["transcript"] == run["transcript"]
    assert [s["text"] for s in simulation["sent"]] == texts

    # a paused conversation (a human has it) starts no flow, even on a keyword
    await customer.say("price?")
    await customer.say("still there?")
    runs = (await tenant.client.get(f"/api/v1/flows/{flow_id}/runs")).json()["data"]
    assert len(runs) == 1


async def test_sample_flow_timeout_branch_and_wait_match_their_simulation(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    stages = await sales_funnel(tenant.client)
    impatient = await published(tenant.client, sample(ask_timeout="2s"))
    patient = await published(tenant.client, sample(wait="1s"))

    silent, silent_conversation = await new_customer(tenant, provider_server)
    silent_run = await start_run(tenant.client, impatient, silent_conversation["contact_id"])
    run = await ended(tenant.client, silent_run["id"])
    assert run["status"] == "completed"
    assert ("ask_name", "timeout") in [(t["node"], t["event"]) for t in run["transcript"]]
    assert await silent.wait_for(3) == [
        GREETING,
        ASK_NAME,
        "No rush! Reply here whenever you're ready.",
    ]
    contact = (
        await tenant.client.get(f"/api/v1/contacts/{silent_conversation['contact_id']}")
    ).json()
    assert "cold-lead" in contact["tags"]
    assert (await simulated(tenant.client, impatient, [None]))["transcript"] == run["transcript"]

    lead, conversation = await new_customer(tenant, provider_server)
    nurtured = await start_run(tenant.client, patient, conversation["contact_id"])
    await lead.wait_for(2)
    await lead.say("Ana")
    await lead.wait_for(3)
    await lead.say("300")
    run = await ended(tenant.client, nurtured["id"])
    assert run["status"] == "completed"
    texts = await lead.wait_for(5)
    assert texts[3:] == [
        "Thanks, Ana! I'll send you our starter guide tomorrow.",
        "Hi Ana, here is the starter guide we promised: https://example.com/guide",
    ]
    assert ("follow_up_wait", "wait") in [(t["node"], t["event"]) for t in run["transcript"]]
    deals = (await tenant.client.get("/api/v1/deals")).json()["data"]
    assert [(d["stage_id"], d["value"]) for d in deals] == [(stages["Nurture"], "300.00")]
    simulation = await simulated(tenant.client, patient, ["Ana", "300"])
    assert simulation["transcript"] == run["transcript"]


async def test_runs_keep_their_version_and_one_runs_per_conversation(
    tenant: Tenant, provider_server: ProviderServer, settings: Settings
) -> None:
    await sales_funnel(tenant.client)
    flow_id = await published(tenant.client, sample())
    first, first_conversation = await new_customer(tenant, provider_server)
    first_run = await start_run(tenant.client, flow_id, first_conversation["contact_id"])
    await run_when(tenant.client, first_run["id"], lambda r: r["current_node_id"] == "ask_name")

    edited = sample()
    for node in edited["nodes"]:
        if node["id"] == "ask_budget":
            node["prompt"] = "v2: your budget, {{name}}?"
    assert (await tenant.client.put(f"/api/v1/flows/{flow_id}", json=edited)).status_code == 200
    assert (await tenant.client.post(f"/api/v1/flows/{flow_id}/publish")).json()["version"] == 2

    # a second start in a conversation that runs one is recorded, not started
    refused = await start_run(tenant.client, flow_id, first_conversation["contact_id"])
    refused = await ended(tenant.client, refused["id"])
    assert refused["status"] == "cancelled"
    assert (
        refused["error"] == f"not started: the conversation already runs {first_run['workflow_id']}"
    )

    await first.say("Maria")
    texts = await first.wait_for(3)
    assert texts[2] == "Nice to meet you, Maria! What's your monthly budget in BRL?"  # still v1

    second, second_conversation = await new_customer(tenant, provider_server)
    second_run = await start_run(tenant.client, flow_id, second_conversation["contact_id"])
    assert second_run["flow_version"] == 2
    await second.wait_for(2)
    await second.say("Bia")
    assert (await second.wait_for(3))[2] == "v2: your budget, Bia?"

    first_now = (await tenant.client.get(f"/api/v1/flow-runs/{first_run['id']}")).json()
    assert (first_now["flow_version"], first_now["status"]) == (1, "waiting")

    # in the Temporal Web UI, runs are found by FlowId and FlowVersion
    client = await connect(settings)
    for run, version in [(first_run, 1), (second_run, 2)]:
        found = (
            await client.get_workflow_handle(run["workflow_id"]).describe()
        ).typed_search_attributes
        assert (found.get(FLOW_ID), found.get(FLOW_VERSION)) == (flow_id, version)


async def test_cancel_a_waiting_run_and_other_companies_cannot(
    tenant: Tenant, provider_server: ProviderServer, other_tenant: Tenant
) -> None:
    flow_id = await published(tenant.client, sample())
    customer, conversation = await new_customer(tenant, provider_server)
    run = await start_run(tenant.client, flow_id, conversation["contact_id"])
    await run_when(tenant.client, run["id"], lambda r: r["status"] == "waiting")

    other = other_tenant.client
    for method, path in [
        ("GET", f"/api/v1/flow-runs/{run['id']}"),
        ("POST", f"/api/v1/flow-runs/{run['id']}/cancel"),
        ("GET", f"/api/v1/flows/{flow_id}/runs"),
    ]:
        assert (await other.request(method, path)).status_code == 404, path
    response = await other.post(
        f"/api/v1/flows/{flow_id}/runs", json={"contact_id": conversation["contact_id"]}
    )
    assert response.status_code == 404

    assert (await tenant.client.post(f"/api/v1/flow-runs/{run['id']}/cancel")).status_code == 202
    cancelled = await ended(tenant.client, run["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["transcript"][-1] == {
        "node": "ask_name",
        "event": "end",
        "status": "cancelled",
    }
    # the conversation is free again: a new run starts
    again = await start_run(tenant.client, flow_id, conversation["contact_id"])
    await run_when(tenant.client, again["id"], lambda r: r["status"] == "waiting")
    assert len(await customer.wait_for(4)) == 4


async def test_http_request_and_ai_reply_take_their_failure_branches(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    """http_request against a real loopback server (the fake provider): a 200 mapped into a
    variable, a 404 taking the failure branch; ai_reply without AI configured fails over."""
    url = f"{provider_server.cloud_base_url}/123/messages"
    document = {
        "name": "http",
        "start": "call",
        "nodes": [
            {"id": "call", "type": "http_request", "method": "POST", "url": url,
             "headers": {"authorization": "Bearer t"},
             "body": '{"messaging_product": "whatsapp", "to": "{{contact.phone_number}}", '
                     '"type": "text"}',
             "save": {"remote_id": "json.messages.0.id", "code": "status"},
             "next": "missing", "on_failure": "broken"},
            {"id": "missing", "type": "http_request", "method": "GET",
             "url": f"{provider_server.url}/nothing-here", "retries": 0, "next": "broken",
             "on_failure": "ai"},
            {"id": "ai", "type": "ai_reply", "next": "broken", "on_failure": "fallback"},
            {"id": "fallback", "type": "send_text", "text": "{{code}} {{remote_id}}",
             "next": "done"},
            {"id": "broken", "type": "send_text", "text": "wrong branch", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip
    flow_id = await published(tenant.client, document)
    customer, conversation = await new_customer(tenant, provider_server)
    run = await ended(
        tenant.client, (await start_run(tenant.client, flow_id, conversation["contact_id"]))["id"]
    )
    assert run["status"] == "completed", run
    failures = [(t["node"], t["error"]) for t in run["transcript"] if t["event"] == "failed"]
    assert failures == [("missing", "HTTP 404"), ("ai", "AI is not enabled for this company")]
    assert run["variables"]["remote_id"].startswith("wamid.")
    [text] = await customer.wait_for(1)
    assert text == f"200 {run['variables']['remote_id']}"


async def test_update_contact_validates_like_the_api_and_drops_the_cached_copy(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    """The node changes the contact through the API's own operation: an e-mail the API refuses
    takes the failure branch with its reason and stores nothing; a valid change is read at once
    through the contact cache (warmed before the run)."""
    document = {
        "name": "contact",
        "start": "bad",
        "nodes": [
            {"id": "bad", "type": "update_contact", "email": "not an address", "next": "done",
             "on_failure": "good"},
            {"id": "good", "type": "update_contact", "name": "Maria", "email": " M@Example.com ",
             "custom_fields": {"plan": "pro"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip
    flow_id = await published(tenant.client, document)
    _, conversation = await new_customer(tenant, provider_server)
    contact_url = f"/api/v1/contacts/{conversation['contact_id']}"
    assert (await tenant.client.get(contact_url)).json()["email"] is None  # now cached
    run = await ended(
        tenant.client, (await start_run(tenant.client, flow_id, conversation["contact_id"]))["id"]
    )
    assert run["status"] == "completed", run
    failures = [(t["node"], t["error"]) for t in run["transcript"] if t["event"] == "failed"]
    assert failures == [("bad", "email: not an email address")]
    contact = (await tenant.client.get(contact_url)).json()
    assert (contact["name"], contact["email"], contact["custom_fields"]) == (
        "Maria",
        "m@example.com",
        {"plan": "pro"},
    )


async def test_a_failed_run_leaves_a_dead_letter(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    document = {
        "name": "fails",
        "start": "deal",
        "nodes": [
            {"id": "deal", "type": "create_deal", "title": "x", "funnel": "Nope", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }
    flow_id = await published(tenant.client, document)
    _, conversation = await new_customer(tenant, provider_server)
    run = await ended(
        tenant.client, (await start_run(tenant.client, flow_id, conversation["contact_id"]))["id"]
    )
    assert run["status"] == "failed"
    assert run["error"] == "deal: funnel: no funnel 'Nope' in this company"
    letters = (await tenant.client.get("/api/v1/ops/dead-letters")).json()["data"]
    assert [(d["kind"], d["reference"]["flow_run_id"]) for d in letters] == [
        ("flow_node", run["id"])
    ]


async def _run_without_workflow(
    sessions: SessionFactory,
    tenant: Tenant,
    flow_id: str,
    conversation: dict[str, Any],
    age_minutes: int = 0,
) -> FlowRun:
    """A flow_runs row as a lost start leaves it: active, no workflow, nothing queued."""
    async with transaction(sessions) as session:
        flow = await flows.get_flow(session, uuid.UUID(tenant.id), uuid.UUID(flow_id))
        row = await session.get(Conversation, uuid.UUID(conversation["id"]))
        assert row is not None
        run = await flow_runs.new_run(session, flow, row)
        run.started_at = utc_now() - timedelta(minutes=age_minutes)
    return run


async def test_a_run_whose_start_was_lost_stops_holding_the_conversation(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    """A flow_runs row left running without a workflow (its start lost) is failed by the next
    message that finds it; the message after that triggers flows again."""
    document = {**sample(), "triggers": [{"type": "keyword", "keywords": ["start"]}]}
    flow_id = await published(tenant.client, document)
    customer, conversation = await new_customer(tenant, provider_server)
    orphan = await _run_without_workflow(sessions, tenant, flow_id, conversation, age_minutes=5)
    await customer.say("start")
    lost = await ended(tenant.client, str(orphan.id))
    assert (lost["status"], lost["error"]) == ("failed", "its workflow is not running")
    await customer.say("start")
    assert await customer.wait_for(2) == [GREETING, ASK_NAME]


async def test_a_cancel_for_a_run_without_a_workflow_ends_it_through_the_inbox(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    """A cancel is an inbox row (asking twice stores one), and the relay ends a run whose
    workflow is gone (here: its start was never queued) as cancelled."""
    flow_id = await published(tenant.client, sample())
    _, conversation = await new_customer(tenant, provider_server)
    orphan = await _run_without_workflow(sessions, tenant, flow_id, conversation)
    for _ in range(2):
        response = await tenant.client.post(f"/api/v1/flow-runs/{orphan.id}/cancel")
        assert response.status_code == 202
    cancelled = await ended(tenant.client, str(orphan.id))
    assert (cancelled["status"], cancelled["error"]) == ("cancelled", "cancelled")
    async with transaction(sessions) as session:
        query = text("SELECT count(*) FROM inbox_events WHERE dedupe_key = :key")
        rows = (await session.execute(query, {"key": f"flow_cancel:{orphan.id}"})).scalar_one()
    assert rows == 1


async def test_a_flow_published_after_messages_triggers_at_once(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    """The company's triggers are cached for every inbound message; publishing refreshes them."""
    customer, _ = await new_customer(tenant, provider_server)  # read (and cached): no flows
    document = {**sample(), "triggers": [{"type": "regex", "pattern": "(?i)^quote\\b"}]}
    await published(tenant.client, document)
    await customer.say("Quote for 10 units?")
    assert await customer.wait_for(2) == [GREETING, ASK_NAME]
