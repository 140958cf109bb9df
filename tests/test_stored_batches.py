"""What the relay stores: a pass's conversations resolved to their contacts as a group, and
batches it stored reaching a workflow twice or after the same rows by reference (the rows are
stored once and what their persist decided happens once).

The stored result is written here as the relay writes it (``InboundBatch.stored``), naming a flow
run in progress whose workflow is gone: acting on it is one signal to that run in the history
(then the run is let go), so acting twice, or not at all, shows there."""

from __future__ import annotations

import time
import uuid
from typing import Any, NamedTuple

import pytest
from sqlalchemy import select, update
from sqlmodel import col
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.common import MetricMeter

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import create_cloud_instance, eventually
from zapflow.activities.conversations import ConversationActivities
from zapflow.cache import Cache
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import Contact, ContactIdentity, InboxEvent, InboxEventStatus, WhatsAppInstance
from zapflow.redis import create_redis
from zapflow.services.inbox import store_events
from zapflow.temporal import connect, conversation_input
from zapflow.whatsapp.types import InboundMessage
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.inputs import (
    ConversationRef,
    FlowRouteResult,
    InboundBatch,
    PersistInboundInput,
    PersistInboundResult,
)

Handle = WorkflowHandle[Any, Any]

pytestmark = pytest.mark.usefixtures("worker")


async def _inbox_row(sessions: SessionFactory, instance_id: str, jid: str, **fields: Any) -> int:
    """A customer's message in the inbox, left alone by the relay (marked processed): the test
    signals or stores it itself."""
    message = InboundMessage(**{
        "key_id": f"wamid.{uuid.uuid4().hex}", "remote_jid": jid, "from_me": False,
        "type": "text", "provider": "cloud", "phone": "+" + jid.split("@")[0], "body": "oi",
        "timestamp": int(time.time()), **fields,
    })  # fmt: skip
    async with transaction(sessions) as session:
        instance = await session.get(WhatsAppInstance, uuid.UUID(instance_id))
        assert instance is not None
        await store_events(session, instance, [message], "test")
        row = await session.execute(
            update(InboxEvent)
            .where(col(InboxEvent.instance_id) == instance.id)
            .where(col(InboxEvent.dedupe_key).contains(message.key_id))
            .values(status=InboxEventStatus.PROCESSED)
            .returning(col(InboxEvent.id))
        )
        return int(row.scalar_one())  # type: ignore[arg-type]


def _stored(row: int) -> InboundBatch:
    """The relay's result for ``row``: a message stored, answering a run whose workflow is gone."""
    result = PersistInboundResult(
        conversation_id=str(uuid.uuid4()), contact_id=str(uuid.uuid4()),
        new_message_ids=[str(uuid.uuid4())], new_inbound=1,
        flow=FlowRouteResult(f"flow-run/{uuid.uuid4()}", str(uuid.uuid4())),
        flow_replies=["oi"], persisted_inbox_ids=[row],
    )  # fmt: skip
    return InboundBatch(from_customer=True, stored=result)


class Effects(NamedTuple):
    persists: int  # the workflow's own persist of rows signalled by reference
    acted: int  # stored results acted on
    settled: bool  # every signal handled (a workflow task completed after the last)


async def _effects(handle: Handle, signals: int) -> Effects:
    """What the workflow's history shows so far (one request)."""
    persists = acted = 0
    kinds = []
    async for event in handle.fetch_history_events():
        kinds.append(event.event_type)
        if event.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            acted += 1
        marker = event.marker_recorded_event_attributes
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and "data" in marker.details:
            persists += b"persist_inbound" in marker.details["data"].payloads[0].data
    signalled = [i for i, kind in enumerate(kinds) if kind == SIGNALLED]
    handled = len(signalled) == signals and COMPLETED in kinds[signalled[-1] :]
    return Effects(persists, acted, handled and persists + acted > 0)


SIGNALLED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


async def _signal(
    settings: Settings, ref: ConversationRef, *batches: InboundBatch
) -> WorkflowHandle:
    """The batches, in order, as the relay sends them (the first starts the workflow)."""
    client = await connect(settings)
    handle = await client.start_workflow(
        ConversationWorkflow.run,
        conversation_input(settings, ref),
        id=ref.workflow_id,
        task_queue=settings.messages_task_queue,
        start_signal="inbound",
        start_signal_args=[batches[0]],
    )
    for batch in batches[1:]:
        await handle.signal(ConversationWorkflow.inbound, batch)
    return handle


async def _settled(handle: Handle, signals: int) -> tuple[int, int]:
    """(persists, results acted on) once every signal is handled and one of them had an
    effect (a local activity's marker may come a task later than its signal)."""
    found = await eventually(lambda: _effects(handle, signals), lambda e: e.settled, within=60)
    return found.persists, found.acted


async def test_a_stored_batch_for_rows_queued_by_reference_is_stored_and_acted_on_once(
    settings: Settings, tenant: Tenant, sessions: SessionFactory
) -> None:
    """A relay signals rows by reference (its transaction failed) and dies; the next one stores
    them and signals the result. Whichever the workflow sees first wins: its own persist (then
    the result is dropped) or the result (then the queued rows are not persisted)."""
    instance = await create_cloud_instance(tenant)
    jid = "5511933330001@s.whatsapp.net"
    row = await _inbox_row(sessions, instance["id"], jid)
    ref = ConversationRef(tenant.id, instance["id"], jid)
    by_reference = InboundBatch(inbox_ids=[row], from_customer=True)
    handle = await _signal(settings, ref, by_reference, _stored(row))
    assert await _settled(handle, 2) in ((1, 0), (0, 1))


async def test_a_stored_batch_signalled_twice_is_acted_on_once(
    settings: Settings, tenant: Tenant, sessions: SessionFactory
) -> None:
    """A relay's signal accepted but its rows not marked done (killed, or the mark failed): the
    next pass signals the result written on the rows again, and the workflow drops it."""
    instance = await create_cloud_instance(tenant)
    jid = "5511933330002@s.whatsapp.net"
    row = await _inbox_row(sessions, instance["id"], jid)
    ref = ConversationRef(tenant.id, instance["id"], jid)
    handle = await _signal(settings, ref, _stored(row), _stored(row))
    assert await _settled(handle, 2) == (0, 1)


async def test_a_pass_resolves_its_conversations_contacts_as_one_by_one(
    settings: Settings, tenant: Tenant, sessions: SessionFactory
) -> None:
    """One transaction for a pass's conversations: new people get a contact each with their
    identities, a known one keeps theirs, and a person's two chats in the pass (a BSUID-keyed
    one and one by phone naming the BSUID) are one contact holding both; the next pass finds
    them all."""
    instance = await create_cloud_instance(tenant)
    persister = ConversationActivities(
        sessions, Cache(create_redis(settings)), WorkerMetrics(MetricMeter.noop)
    )
    bsuid = "BR.7700000000000001"
    chats: dict[str, dict[str, Any]] = {  # remote JID → the message's fields
        "5511933331001@s.whatsapp.net": {},
        "5511933331002@s.whatsapp.net": {"push_name": "Ana"},
        "5511933331003@s.whatsapp.net": {},
        f"{bsuid}@bsuid": {"phone": None, "user_id": bsuid},
        "5511933331004@s.whatsapp.net": {"user_id": bsuid},
    }

    async def persist(jids: list[str]) -> dict[str, str]:
        rows = [await _inbox_row(sessions, instance["id"], j, **chats[j]) for j in jids]
        refs = [ConversationRef(tenant.id, instance["id"], j) for j in jids]
        inputs = [PersistInboundInput(r, inbox_ids=[i]) for r, i in zip(refs, rows, strict=True)]
        results = await persister.persist_pass(inputs)
        return {j: r.contact_id for j, r in zip(jids, results, strict=True)}

    known = await persist(["5511933331003@s.whatsapp.net"])
    first = await persist(sorted(chats))
    assert first["5511933331003@s.whatsapp.net"] == known["5511933331003@s.whatsapp.net"]
    assert first[f"{bsuid}@bsuid"] == first["5511933331004@s.whatsapp.net"]
    assert len(set(first.values())) == 4
    async with sessions() as session:
        found = await session.execute(
            select(col(Contact.id), col(Contact.phone_number), col(Contact.name),
                   col(ContactIdentity.kind), col(ContactIdentity.value))
            .join(ContactIdentity, col(ContactIdentity.contact_id) == col(Contact.id))
            .where(col(Contact.company_id) == uuid.UUID(tenant.id))
        )  # fmt: skip
        held: dict[str, set[tuple[str, str]]] = {}
        for contact_id, phone, name, kind, value in found:
            held.setdefault(str(contact_id), set()).add((kind, value))
            assert phone is None or phone == "+" + value.split("@")[0] or kind != "jid"
            assert name == ("Ana" if phone == "+5511933331002" else "")
    assert len(held) == 4
    person = held[first[f"{bsuid}@bsuid"]]
    assert {("bsuid", bsuid), ("phone", "+5511933331004")} <= person
    assert held[first["5511933331001@s.whatsapp.net"]] == {
        ("phone", "+5511933331001"),
        ("jid", "5511933331001@s.whatsapp.net"),
    }
    assert await persist(sorted(chats)) == first
