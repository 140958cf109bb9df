"""Merging contacts: a phone contact and a BSUID-only contact of one person, each with
conversations, messages, deals, notes, tags, custom fields, follow-ups and (the BSUID one) an
active flow run, become one contact with everything (counts before and after), an audit record,
and a flow run that still answers; a preview changes nothing; duplicates are suggested."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import create_cloud_instance, eventually, post_cloud
from tests.whatsapp.payloads import load
from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.models import (
    ContactIdentity,
    ContactMerge,
    Conversation,
    Deal,
    FlowRun,
    FollowUp,
    InboxEvent,
    InboxEventType,
    Message,
    Note,
)
from zapflow.temporal import connect
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.inputs import ConversationRef

pytestmark = pytest.mark.usefixtures("worker")

BSUID = "BR.1502576394655843"
ASK_FLOW: dict[str, Any] = {
    "name": "Ask plan",
    "start": "ask",
    "nodes": [
        {"id": "ask", "type": "ask", "prompt": "Qual plano?", "variable": "plan",
         "timeout": "1h", "on_timeout": "done", "next": "done"},
        {"id": "done", "type": "end"},
    ],
}  # fmt: skip


def delivery(name: str, instance: dict[str, Any], **message: Any) -> dict[str, Any]:
    body = load(name)
    value = body["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = instance["phone_number_id"]
    value["messages"][0].update(message)
    return body


async def chat(tenant: Tenant, instance: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Deliver ``body``; its conversation (with its contact id) once stored."""
    assert (await post_cloud(tenant.client, instance["webhook_url"], body)).status_code == 200
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    jids = {f"{message.get('from')}@s.whatsapp.net", f"{message.get('from_user_id')}@bsuid"}

    async def found() -> list[dict[str, Any]]:
        rows = (await tenant.client.get("/api/v1/conversations")).json()["data"]
        return [r for r in rows if r["remote_jid"] in jids]

    [conversation] = await eventually(found, lambda rows: len(rows) == 1)
    return conversation


async def counts(sessions: SessionFactory, contact_ids: list[str]) -> dict[str, int]:
    ids = [uuid.UUID(c) for c in contact_ids]
    found: dict[str, int] = {}
    async with sessions() as session:
        for model in (Conversation, Deal, Note, FollowUp, FlowRun, ContactIdentity):
            query = select(func.count()).where(model.contact_id.in_(ids))
            found[str(model.__tablename__)] = (await session.execute(query)).scalar_one()
        query = (
            select(func.count())
            .select_from(Message)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(col(Conversation.contact_id).in_(ids))
        )
        found["messages"] = (await session.execute(query)).scalar_one()
    return found


async def funnel(tenant: Tenant) -> dict[str, Any]:
    body = {"name": "Vendas", "stages": [{"name": "Novo"}]}
    response = await tenant.client.post("/api/v1/funnels", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def give(
    tenant: Tenant, contact_id: str, conversation_id: str, sales: dict[str, Any], n: int
) -> None:
    """Deals, notes, tags, custom fields and a follow-up for one contact."""
    client = tenant.client
    for i in range(n):
        deal = {"title": f"Deal {i}", "funnel_id": sales["id"], "contact_id": contact_id}
        assert (await client.post("/api/v1/deals", json=deal)).status_code == 201
        note = {"body": f"note {i}", "contact_id": contact_id}
        assert (await client.post("/api/v1/notes", json=note)).status_code == 201
    tag = {"tag": f"t{n}"}
    assert (await client.post(f"/api/v1/contacts/{contact_id}/tags", json=tag)).status_code == 200
    fields = {"custom_fields": {"plan": f"p{n}", f"only{n}": "x"}, "email": f"c{n}@example.com"}
    assert (await client.patch(f"/api/v1/contacts/{contact_id}", json=fields)).status_code == 200
    followup = {"after": "PT1H", "text": "Ainda por aí?", "cancel_on_reply": False}
    path = f"/api/v1/conversations/{conversation_id}/followups"
    assert (await client.post(path, json=followup)).status_code == 201


async def test_merge_loses_nothing_and_the_flow_run_still_answers(
    tenant: Tenant, sessions: SessionFactory, provider_server: ProviderServer, settings: Settings
) -> None:
    instance = await create_cloud_instance(tenant)
    phone = await chat(tenant, instance, delivery("cloud_text", instance))
    bsuid = await chat(tenant, instance, delivery("cloud_bsuid", instance))
    survivor, merged = phone["contact_id"], bsuid["contact_id"]
    assert survivor != merged
    sales = await funnel(tenant)
    await give(tenant, survivor, phone["id"], sales, 2)
    await give(tenant, merged, bsuid["id"], sales, 3)
    created = await tenant.client.post("/api/v1/flows", json=ASK_FLOW)
    flow_id = created.json()["id"]
    assert (await tenant.client.post(f"/api/v1/flows/{flow_id}/publish")).status_code == 201
    run = await tenant.client.post(f"/api/v1/flows/{flow_id}/runs", json={"contact_id": merged})
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]
    await eventually(lambda: _async(provider_server.sent_to(BSUID)), lambda sent: len(sent) == 1)

    before = await counts(sessions, [survivor, merged])
    each = [await counts(sessions, [survivor]), await counts(sessions, [merged])]
    told_before = await followup_events(sessions, tenant.id)
    preview = await tenant.client.post(
        f"/api/v1/contacts/{survivor}/merge", json={"contact_id": merged, "preview": True}
    )
    assert preview.status_code == 200, preview.text
    assert (preview.json()["merge_id"], preview.json()["moved"]["deals"]) == (None, 3)
    assert [await counts(sessions, [survivor]), await counts(sessions, [merged])] == each
    assert (await tenant.client.get(f"/api/v1/contacts/{merged}")).status_code == 200
    assert await followup_events(sessions, tenant.id) == told_before

    response = await tenant.client.post(
        f"/api/v1/contacts/{survivor}/merge",
        json={"contact_id": merged, "take": ["custom_fields.plan"]},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    # the two chats on the number became the older one (the phone's)
    assert report["moved"]["conversations_merged"] == 1
    assert await counts(sessions, [survivor]) == {**before, "conversations": 1}
    await one_thread_in_order(tenant, phone["id"], before["messages"])
    assert report["moved"]["deals"] == 3 and report["moved"]["notes"] == 3
    assert report["moved"]["flow_runs"] == 1 and report["moved"]["followup_queue"] == 1
    assert report["moved"]["messages"] >= 2  # the BSUID chat's message and the flow's ask
    assert (await tenant.client.get(f"/api/v1/contacts/{merged}")).status_code == 404

    await survivor_took_everything(tenant, sessions, survivor, merged, report)
    # the workflows are told, through the inbox: both chats' (the merge) and the survivor's
    assert await followup_events(sessions, tenant.id) == told_before + 3

    # the customer's answer on the BSUID chat still reaches the run, now the survivor's
    answer = delivery("cloud_bsuid", instance, id="wamid.ANSWER", text={"body": "anual"})
    assert (await post_cloud(tenant.client, instance["webhook_url"], answer)).status_code == 200

    async def the_run() -> dict[str, Any]:
        return dict((await tenant.client.get(f"/api/v1/flow-runs/{run_id}")).json())

    ended = await eventually(the_run, lambda r: r["status"] == "completed", 30)
    assert ended["variables"]["plan"] == "anual"
    assert ended["contact_id"] == survivor
    await the_run_reported_to_the_survivor(settings, tenant, instance, phone, bsuid, ended)
    await one_thread_in_order(tenant, phone["id"], before["messages"] + 1)
    # the BSUID names the survivor now: no contact comes back
    async with sessions() as session:
        owner = await session.execute(
            text("SELECT contact_id FROM contact_identities WHERE company_id = :c AND value = :v"),
            {"c": tenant.id, "v": BSUID},
        )
        assert [str(c) for c in owner.scalars()] == [survivor]


async def the_run_reported_to_the_survivor(
    settings: Settings,
    tenant: Tenant,
    instance: dict[str, Any],
    survivor: dict[str, Any],
    merged: dict[str, Any],
    run: dict[str, Any],
) -> None:
    """The run, started by the merged conversation's workflow, told the survivor's of its end
    (the one routing its answers now), and the merged one let go of it at the merge (it would
    otherwise wait for that end forever, never idle)."""
    client = await connect(settings)
    survivor_id, merged_id = (
        ConversationRef(tenant.id, instance["id"], c["remote_jid"]).workflow_id
        for c in (survivor, merged)
    )

    async def told() -> list[tuple[str, str]]:
        """Whom the run signalled (its row reads completed a moment before it signals)."""
        events = client.get_workflow_handle(run["workflow_id"]).fetch_history_events()
        return [
            (t.signal_name, t.workflow_execution.workflow_id)
            async for e in events
            if (t := e.signal_external_workflow_execution_initiated_event_attributes).signal_name
        ]

    assert await eventually(told, bool) == [("flow_ended", survivor_id)]
    for workflow_id in (survivor_id, merged_id):
        handle = client.get_workflow_handle(workflow_id)
        pending = await eventually(
            lambda h=handle: h.query(ConversationWorkflow.pending), lambda p: p["flow_run"] == 0
        )
        assert pending["flow_run"] == 0


async def one_thread_in_order(tenant: Tenant, conversation_id: str, n: int) -> None:
    """The contact's one conversation holds ``n`` messages and is open."""
    listed = (await tenant.client.get("/api/v1/conversations")).json()["data"]
    assert [c["id"] for c in listed] == [conversation_id]
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    assert (conversation["status"], conversation["message_count"]) == ("open", n)

    async def thread() -> list[dict[str, Any]]:
        path = f"/api/v1/conversations/{conversation_id}/messages"
        return list((await tenant.client.get(path, params={"limit": 50})).json()["data"])

    rows = await eventually(thread, lambda rows: len({m["id"] for m in rows}) == n)
    # the thread reads both chats' messages interleaved by when they were stored
    times = [m["created_at"] for m in rows]
    assert times == sorted(times, reverse=True)


async def survivor_took_everything(
    tenant: Tenant, sessions: SessionFactory, survivor: str, merged: str, report: dict[str, Any]
) -> None:
    """The survivor's fields after the merge, the conflicts reported, and the audit record."""
    contact = (await tenant.client.get(f"/api/v1/contacts/{survivor}")).json()
    assert contact["name"] == "Maria Souza"  # the survivor's, unless taken
    assert contact["custom_fields"] == {"plan": "p3", "only2": "x", "only3": "x"}
    assert contact["email"] == "c2@example.com"
    assert set(contact["tags"]) == {"t2", "t3"}
    conflicts = {c["field"]: c["kept"] for c in report["conflicts"]}
    assert conflicts == {
        "name": "survivor",
        "email": "survivor",
        "custom_fields.plan": "merged",
    }
    async with sessions() as session:
        audit = (await session.execute(select(ContactMerge))).scalars().all()
        mine = [a for a in audit if str(a.survivor_id) == survivor]
        assert [str(a.merged_id) for a in mine] == [merged]
        assert mine[0].merged_contact["name"] == "Ana"


async def _async(value: Any) -> Any:
    return value


async def followup_events(sessions: SessionFactory, company_id: str) -> int:
    async with sessions() as session:
        query = select(func.count()).where(
            col(InboxEvent.company_id) == uuid.UUID(company_id),
            col(InboxEvent.event_type) == InboxEventType.FOLLOWUP,
        )
        return int((await session.execute(query)).scalar_one())


async def test_merge_refusals(tenant: Tenant) -> None:
    instance = await create_cloud_instance(tenant)
    phone = await chat(tenant, instance, delivery("cloud_text", instance))
    contact_id = phone["contact_id"]
    path = f"/api/v1/contacts/{contact_id}/merge"
    itself = await tenant.client.post(path, json={"contact_id": contact_id})
    assert itself.status_code == 422 and "contact_id" in itself.text
    missing = await tenant.client.post(path, json={"contact_id": str(uuid.uuid4())})
    assert missing.status_code == 404 and "contact_id" in missing.text


async def test_duplicates_suggest_same_name_and_phone_suffix(tenant: Tenant) -> None:
    client = tenant.client
    first = await client.post(
        "/api/v1/contacts", json={"name": "Rita", "phone_number": "+5511987654321"}
    )
    second = await client.post(
        "/api/v1/contacts", json={"name": "rita", "phone_number": "+551187654321"}
    )
    other = await client.post(
        "/api/v1/contacts", json={"name": "Rita", "phone_number": "+5511900000000"}
    )
    assert {r.status_code for r in (first, second, other)} == {201}
    pairs = (await client.get("/api/v1/contacts/duplicates")).json()
    found = {frozenset((p["contact_id"], p["other_id"])): p["reason"] for p in pairs}
    assert found == {frozenset((first.json()["id"], second.json()["id"])): "name_and_phone_suffix"}
