"""Business-scoped user ids (BSUIDs), usernames and number changes, through the real webhook,
inbox, relay and ConversationWorkflow: one person stays one contact, found by BSUID first, and
replies go to the phone when one is known, else to the BSUID."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import col

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    create_cloud_instance,
    create_evolution_instance,
    eventually,
    post_cloud,
)
from tests.test_flows_runs import published
from tests.test_interactive import CONFIRM_FLOW
from tests.whatsapp.payloads import load
from zapflow.db import SessionFactory, transaction
from zapflow.models import (
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    InboxEvent,
    Message,
)
from zapflow.schemas.contacts import ImportReport
from zapflow.services import contact_csv
from zapflow.services.identities import Identity, alias_key, lock_creation
from zapflow.whatsapp.evolution import TYPING_MS
from zapflow.whatsapp.simulate import evolution_text
from zapflow.whatsapp.types import InboundMessage

pytestmark = pytest.mark.usefixtures("worker")

BSUID = "BR.1502576394655843"
ANA_PHONE = "+5521998765432"


def delivery(name: str, instance: dict[str, Any], **message: Any) -> dict[str, Any]:
    """A fixture addressed to our instance; ``message`` overrides fields of its first message."""
    body = load(name)
    value = body["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = instance["phone_number_id"]
    if message and value.get("messages"):
        value["messages"][0].update(message)
    return body


async def post(tenant: Tenant, instance: dict[str, Any], body: dict[str, Any]) -> None:
    response = await post_cloud(tenant.client, instance["webhook_url"], body)
    assert response.status_code == 200, response.text


async def contacts_of(sessions: SessionFactory, company_id: str) -> list[Contact]:
    async with sessions() as session:
        query = select(Contact).where(col(Contact.company_id) == uuid.UUID(company_id))
        return list((await session.execute(query)).scalars())


async def identities_of(sessions: SessionFactory, contact_id: uuid.UUID) -> set[tuple[str, str]]:
    async with sessions() as session:
        query = select(ContactIdentity.kind, ContactIdentity.value).where(
            col(ContactIdentity.contact_id) == contact_id
        )
        return {(str(kind), value) for kind, value in (await session.execute(query)).all()}


async def messages_stored(sessions: SessionFactory, company_id: str, n: int) -> list[Message]:
    async def stored() -> list[Message]:
        async with sessions() as session:
            query = select(Message).where(col(Message.company_id) == uuid.UUID(company_id))
            return list((await session.execute(query)).scalars())

    return await eventually(stored, lambda rows: len(rows) >= n)


async def conversation_of(sessions: SessionFactory, message: Message) -> Conversation:
    async with sessions() as session:
        found = await session.get(Conversation, message.conversation_id)
        assert found is not None
        return found


def test_identity_names_bsuid_first_and_previous_names_apart() -> None:
    change = InboundMessage(
        key_id="k", remote_jid="5511987654321@s.whatsapp.net", from_me=False, type="system",
        provider="cloud", phone="+5511987654321", user_id=BSUID,
        payload={"identity_change": {"phone": "+5511912345678", "user_id": "BR.77",
                                     "previous_user_id": BSUID}},
    )  # fmt: skip
    identity = Identity.of_chat(change.remote_jid, [change])
    assert identity.names()[:2] == [("bsuid", "BR.77"), ("phone", "+5511912345678")]
    assert ("bsuid", BSUID) in identity.previous
    assert ("phone", "+5511987654321") in identity.previous
    assert identity.phone_changed
    assert alias_key("BR.1@bsuid") == ("bsuid", "BR.1")
    assert alias_key("1@lid") == ("lid", "1@lid")


async def test_bsuid_only_fixture_round_trips_to_a_phoneless_contact(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid", instance))
    [message] = await messages_stored(sessions, tenant.id, 1)
    [contact] = await contacts_of(sessions, tenant.id)
    assert (contact.phone_number, contact.name) == (None, "Ana")
    assert await identities_of(sessions, contact.id) == {
        ("bsuid", BSUID),
        ("username", "@ana.lima"),
    }
    assert (await conversation_of(sessions, message)).remote_jid == f"{BSUID}@bsuid"


async def test_phone_and_bsuid_fixture_round_trips_to_every_identity(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid_with_phone", instance))
    await messages_stored(sessions, tenant.id, 1)
    [contact] = await contacts_of(sessions, tenant.id)
    assert contact.phone_number == "+5511987654321"
    assert await identities_of(sessions, contact.id) == {
        ("bsuid", BSUID),
        ("phone", "+5511987654321"),
        ("jid", "5511987654321@s.whatsapp.net"),
        ("username", "@maria.souza"),
    }


async def test_bsuid_customer_gets_replies_at_the_bsuid_then_at_the_phone_they_share(
    tenant: Tenant, sessions: SessionFactory, provider_server: ProviderServer
) -> None:
    """The end-to-end case: a customer known by BSUID only writes, an agent replies (sent to the
    BSUID), the customer shares their phone from the contact request, the next reply goes to
    the phone, and a later message from the phone (with the BSUID) is still the same contact."""
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid", instance))
    [first] = await messages_stored(sessions, tenant.id, 1)
    path = f"/api/v1/conversations/{first.conversation_id}/messages"
    assert (await tenant.client.post(path, json={"text": "Olá Ana!"})).status_code == 202
    [to_bsuid] = await eventually(
        lambda: _async(provider_server.sent_to(BSUID)), lambda found: len(found) == 1
    )
    assert "to" not in to_bsuid.json and to_bsuid.json["recipient"] == BSUID

    await post(tenant, instance, delivery("cloud_contact_request", instance))
    await messages_stored(sessions, tenant.id, 3)
    [contact] = await contacts_of(sessions, tenant.id)
    assert contact.phone_number == ANA_PHONE
    assert ("phone", ANA_PHONE) in await identities_of(sessions, contact.id)

    assert (await tenant.client.post(path, json={"text": "Anotado!"})).status_code == 202
    digits = ANA_PHONE[1:]
    await eventually(lambda: _async(provider_server.sent_to(digits)), lambda f: len(f) == 1)

    later = delivery("cloud_bsuid_with_phone", instance, **{"from": digits, "id": "wamid.LATER"})
    later["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = digits
    await post(tenant, instance, later)
    rows = await messages_stored(sessions, tenant.id, 5)
    assert [c.id for c in await contacts_of(sessions, tenant.id)] == [contact.id]
    newest = next(m for m in rows if m.message_key_id == "wamid.LATER")
    assert (await conversation_of(sessions, newest)).contact_id == contact.id
    # one person, one conversation: the phone chat is the BSUID chat
    assert {m.conversation_id for m in rows} == {first.conversation_id}


async def _async(value: Any) -> Any:
    return value


@pytest.mark.parametrize("change", ["cloud_user_changed_number", "cloud_system"])
async def test_number_change_moves_the_phone_to_the_same_contact(
    change: str, tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid_with_phone", instance))
    await messages_stored(sessions, tenant.id, 1)
    await post(tenant, instance, delivery(change, instance))
    await messages_stored(sessions, tenant.id, 2)
    [contact] = await contacts_of(sessions, tenant.id)
    assert contact.phone_number == "+5511912345678"
    names = await identities_of(sessions, contact.id)
    assert ("phone", "+5511912345678") in names
    assert ("phone", "+5511987654321") not in names  # the old number may go to someone else
    if change == "cloud_user_changed_number":
        assert ("bsuid", "BR.7788990011223344") in names

    # the customer now writes from the new number, with the new BSUID: still the same person
    new = delivery("cloud_text", instance, **{"from": "5511912345678", "id": "wamid.NEW"})
    new["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = "5511912345678"
    await post(tenant, instance, new)
    await messages_stored(sessions, tenant.id, 3)
    assert [c.id for c in await contacts_of(sessions, tenant.id)] == [contact.id]


async def test_bsuid_change_links_the_new_bsuid(tenant: Tenant, sessions: SessionFactory) -> None:
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid", instance))
    await messages_stored(sessions, tenant.id, 1)
    await post(tenant, instance, delivery("cloud_user_changed_user_id", instance))
    await messages_stored(sessions, tenant.id, 2)
    new = delivery("cloud_bsuid", instance, from_user_id="BR.5566778899001122", id="wamid.N")
    new["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = "BR.5566778899001122"
    await post(tenant, instance, new)
    await messages_stored(sessions, tenant.id, 3)
    [contact] = await contacts_of(sessions, tenant.id)
    assert {("bsuid", BSUID), ("bsuid", "BR.5566778899001122")} <= await identities_of(
        sessions, contact.id
    )


async def test_status_of_a_message_sent_to_a_bsuid_is_applied(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid", instance))
    [inbound] = await messages_stored(sessions, tenant.id, 1)
    statuses = load("cloud_statuses_bsuid")
    key_id = statuses["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    async with sessions() as session, session.begin():
        session.add(
            Message(
                company_id=inbound.company_id,
                conversation_id=inbound.conversation_id,
                instance_id=inbound.instance_id,
                message_key_id=key_id,
                direction="outbound",
                from_me=True,
                body="Olá Ana!",
                status="sent",
                sent_by="agent",
            )
        )
    await post(tenant, instance, delivery("cloud_statuses_bsuid", instance))

    async def status() -> str:
        async with sessions() as session:
            query = select(Message.status).where(col(Message.message_key_id) == key_id)
            return str((await session.execute(query)).scalar_one())

    await eventually(status, lambda found: found == "delivered")


async def test_a_contact_without_a_phone_works_in_inbox_contacts_and_export(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid", instance))
    [message] = await messages_stored(sessions, tenant.id, 1)
    conversation_id = str(message.conversation_id)

    async def inbox(**params: str) -> list[str]:
        page = (await tenant.client.get("/api/v1/conversations", params=params)).json()
        return [row["id"] for row in page["data"]]

    assert await inbox() == [conversation_id]
    assert await inbox(q="Ana") == [conversation_id]
    # by username or BSUID, exactly (a stranger's finds nothing)
    assert await inbox(q="@ana.lima") == [conversation_id]
    assert await inbox(q=BSUID) == [conversation_id]
    assert await inbox(q="@ana.lim") == []
    assert await inbox(q="BR.9999999999") == []
    for q in ("@ana.lima", BSUID):
        found = (await tenant.client.get("/api/v1/contacts", params={"q": q})).json()["data"]
        assert [c["name"] for c in found] == ["Ana"]
    row = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    assert row["contact"]["phone_number"] is None
    found = (await tenant.client.get("/api/v1/contacts", params={"q": "Ana"})).json()["data"]
    assert [c["phone_number"] for c in found] == [None]
    export = await tenant.client.get("/api/v1/contacts/export")
    assert export.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(export.text)))
    assert (row["phone_number"], row["name"]) == ("", "Ana")
    assert (row["bsuid"], row["username"]) == (BSUID, "'@ana.lima")  # "@" escaped (a formula)


async def test_bsuid_chat_and_phone_chat_arriving_together_are_one_contact(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """Two chats of one person (BSUID only, and phone with BSUID) persisted at once race to
    create the contact: the identities' advisory locks let one create it and the other find
    it; the conversation is one, keyed by the BSUID."""
    instance = await create_cloud_instance(tenant)
    await asyncio.gather(
        post(tenant, instance, delivery("cloud_bsuid", instance)),
        post(tenant, instance, delivery("cloud_bsuid_with_phone", instance)),
    )
    rows = await messages_stored(sessions, tenant.id, 2)
    # both carry the BSUID: one conversation, keyed by it, whichever the relay saw first
    assert len({m.conversation_id for m in rows}) == 1
    assert (await conversation_of(sessions, rows[0])).remote_jid == f"{BSUID}@bsuid"
    [contact] = await contacts_of(sessions, tenant.id)
    assert contact.phone_number == "+5511987654321"
    assert ("bsuid", BSUID) in await identities_of(sessions, contact.id)


async def test_a_phone_message_and_a_first_bsuid_message_in_one_relay_pass_are_one_conversation(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """One delivery holds the person's phone-only message and their first one with a BSUID:
    the relay claims both in one pass and keys them apart (phone JID, BSUID), so two workflows
    persist at once. The second to store finds the first's conversation and forwards its
    inbox row there: one conversation, both messages."""
    instance = await create_cloud_instance(tenant)
    phone_only = delivery("cloud_bsuid_with_phone", instance, id="wamid.PHONE", timestamp="1")
    value = phone_only["entry"][0]["changes"][0]["value"]
    del value["messages"][0]["from_user_id"], value["contacts"][0]["user_id"]
    with_bsuid = delivery("cloud_bsuid_with_phone", instance, id="wamid.BSUID", timestamp="2")
    phone_only["entry"] += with_bsuid["entry"]  # one POST: one transaction, one relay pass
    await post(tenant, instance, phone_only)

    async def stored() -> list[Message]:
        rows = await messages_stored(sessions, tenant.id, 2)
        return rows if len({m.conversation_id for m in rows}) == 1 else []

    rows = await eventually(stored, bool)
    async with sessions() as session:
        query = select(Conversation).where(col(Conversation.company_id) == uuid.UUID(tenant.id))
        [conversation] = (await session.execute(query)).scalars()
        forwarded = await session.execute(
            select(InboxEvent.conversation_key).where(
                col(InboxEvent.company_id) == uuid.UUID(tenant.id),
                col(InboxEvent.conversation_key).is_not(None),
            )
        )
        assert list(forwarded.scalars()) == [conversation.remote_jid]
    assert conversation.message_count == 2
    assert sorted(m.message_key_id for m in rows) == ["wamid.BSUID", "wamid.PHONE"]


async def test_meta_naming_a_bsuid_and_its_phone_merges_the_split_person(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """A phone chat from before BSUIDs, then the person's BSUID-only chat (no phone: a second
    contact and conversation), then a message with both: one contact (the phone's) holding
    both, one conversation (the older) with the three messages, an audit record."""
    instance = await create_cloud_instance(tenant)
    old = delivery("cloud_bsuid_with_phone", instance, id="wamid.OLD")
    value = old["entry"][0]["changes"][0]["value"]
    del value["messages"][0]["from_user_id"], value["contacts"][0]["user_id"]
    await post(tenant, instance, old)
    await messages_stored(sessions, tenant.id, 1)
    await post(tenant, instance, delivery("cloud_bsuid", instance, id="wamid.BSUID_ONLY"))
    rows = await messages_stored(sessions, tenant.id, 2)
    assert (
        len({m.conversation_id for m in rows}) == 2
        and len(await contacts_of(sessions, tenant.id)) == 2
    )

    await post(tenant, instance, delivery("cloud_bsuid_with_phone", instance, id="wamid.BOTH"))

    async def merged() -> list[Contact]:
        return await contacts_of(sessions, tenant.id)

    [contact] = await eventually(merged, lambda found: len(found) == 1)
    assert {("bsuid", BSUID), ("phone", "+5511987654321")} <= await identities_of(
        sessions, contact.id
    )
    rows = await messages_stored(sessions, tenant.id, 3)
    assert len({m.conversation_id for m in rows}) == 1
    conversation = await conversation_of(sessions, rows[0])
    assert (conversation.remote_jid, conversation.message_count) == (
        "5511987654321@s.whatsapp.net",
        3,
    )
    async with sessions() as session:
        [audit] = (
            await session.execute(
                select(ContactMerge).where(col(ContactMerge.survivor_id) == contact.id)
            )
        ).scalars()
        assert audit.user_id is None and audit.moved["conversations_merged"] == 1


async def test_a_follow_up_reaches_a_contact_without_a_phone_at_the_bsuid(
    tenant: Tenant, sessions: SessionFactory, provider_server: ProviderServer
) -> None:
    instance = await create_cloud_instance(tenant)
    # written now: the follow-up's text goes only within WhatsApp's 24-hour window
    await post(tenant, instance, delivery("cloud_bsuid", instance, timestamp=str(int(time.time()))))
    [message] = await messages_stored(sessions, tenant.id, 1)
    path = f"/api/v1/conversations/{message.conversation_id}/followups"
    body = {"after": "PT1S", "text": "Ainda por aí?", "cancel_on_reply": False}
    assert (await tenant.client.post(path, json=body)).status_code == 201
    [sent] = await eventually(
        lambda: _async(provider_server.sent_to(BSUID)), lambda found: len(found) == 1, 30
    )
    assert sent.json["text"]["body"] == "Ainda por aí?"


async def test_a_chat_keyed_by_phone_before_bsuids_keeps_its_conversation_and_workflow(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """A conversation started before BSUIDs is keyed by the phone JID, and its workflow id with
    it. The same person's later messages carrying a BSUID, and one with the BSUID alone, join
    it: a conversation's key (so its running workflow's id) never changes."""
    instance = await create_cloud_instance(tenant)
    old = delivery("cloud_bsuid_with_phone", instance)
    value = old["entry"][0]["changes"][0]["value"]
    del value["messages"][0]["from_user_id"], value["contacts"][0]["user_id"]
    await post(tenant, instance, old)
    [first] = await messages_stored(sessions, tenant.id, 1)
    before = await conversation_of(sessions, first)
    assert before.remote_jid == "5511987654321@s.whatsapp.net"
    assert before.workflow_id is not None and before.workflow_id.endswith(before.remote_jid)

    await post(tenant, instance, delivery("cloud_bsuid_with_phone", instance, id="wamid.B"))
    await messages_stored(sessions, tenant.id, 2)
    await post(tenant, instance, delivery("cloud_bsuid", instance, id="wamid.BSUID_ONLY"))
    rows = await messages_stored(sessions, tenant.id, 3)
    assert {m.conversation_id for m in rows} == {first.conversation_id}
    after = await conversation_of(sessions, first)
    assert (after.remote_jid, after.workflow_id) == (before.remote_jid, before.workflow_id)
    [contact] = await contacts_of(sessions, tenant.id)
    assert ("bsuid", BSUID) in await identities_of(sessions, contact.id)


async def test_opening_a_conversation_marks_it_read_at_whatsapp_when_the_company_asks(
    tenant: Tenant, sessions: SessionFactory, provider_server: ProviderServer
) -> None:
    """Mark read (the unread count to 0) also tells WhatsApp, with the typing indicator, when
    the company's ``mark_read`` setting is on: Meta's one call, naming the latest message."""
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid_with_phone", instance))
    [first] = await messages_stored(sessions, tenant.id, 1)
    read = f"/api/v1/conversations/{first.conversation_id}/read"
    assert (await tenant.client.post(read)).json()["unread_count"] == 0  # the setting is off

    on = await tenant.client.patch("/api/v1/company", json={"settings": {"mark_read": True}})
    assert on.status_code == 200, on.text
    await post(tenant, instance, delivery("cloud_bsuid_with_phone", instance, id="wamid.SECOND"))
    await messages_stored(sessions, tenant.id, 2)
    await post(tenant, instance, delivery("cloud_bsuid", instance, id="wamid.THIRD"))
    await messages_stored(sessions, tenant.id, 3)
    response = await tenant.client.post(read)
    assert response.status_code == 200 and response.json()["unread_count"] == 0
    [call] = await eventually(
        lambda: _async(provider_server.read_marks("wamid.THIRD")), lambda found: len(found) == 1
    )
    assert call.path.endswith(f"/{instance['phone_number_id']}/messages")
    assert call.json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.THIRD",
        "typing_indicator": {"type": "text"},
    }
    assert provider_server.read_marks(str(first.message_key_id)) == []
    assert provider_server.read_marks("wamid.SECOND") == []  # the latest covers those before


async def test_a_number_of_its_own_sends_read_receipts_evolution_too(
    tenant: Tenant, sessions: SessionFactory, provider_server: ProviderServer
) -> None:
    """A number's ``settings.mark_read`` overrides the company's: an Evolution number set to
    send them marks the customer's message read (``/chat/markMessageAsRead``, by key and
    chat) and shows "typing…" (``/chat/sendPresence``); a Cloud API number set not to sends
    nothing while the company asks for it."""
    on = await tenant.client.patch("/api/v1/company", json={"settings": {"mark_read": True}})
    assert on.status_code == 200, on.text
    evolution = await create_evolution_instance(tenant)
    path = f"/api/v1/instances/{evolution['id']}"
    patched = await tenant.client.patch(path, json={"settings": {"mark_read": True}})
    assert patched.status_code == 200, patched.text
    cloud = await create_cloud_instance(tenant)
    path = f"/api/v1/instances/{cloud['id']}"
    patched = await tenant.client.patch(path, json={"settings": {"mark_read": False}})
    assert patched.status_code == 200, patched.text
    key_id = f"3EB0{uuid.uuid4().hex[:16].upper()}"
    body = evolution_text(evolution["evolution_instance"], "evo-key", "5511977776666", key_id, "Oi")
    response = await tenant.client.post(evolution["webhook_url"], json=body)
    assert response.status_code == 200, response.text
    await post(tenant, cloud, delivery("cloud_bsuid_with_phone", cloud, id="wamid.CLOUD"))
    rows = await messages_stored(sessions, tenant.id, 2)
    for message in rows:
        read = f"/api/v1/conversations/{message.conversation_id}/read"
        assert (await tenant.client.post(read)).json()["unread_count"] == 0
    [call] = await eventually(
        lambda: _async(provider_server.read_marks(key_id)), lambda found: len(found) == 1
    )
    assert call.path == f"/chat/markMessageAsRead/{evolution['evolution_instance']}"
    assert call.headers["apikey"] == "evo-key"
    assert call.json == {
        "readMessages": [
            {"remoteJid": "5511977776666@s.whatsapp.net", "fromMe": False, "id": key_id}
        ]
    }
    # then "typing…": Evolution's presence call, to the same chat
    presence = f"/chat/sendPresence/{evolution['evolution_instance']}"
    [typing] = await eventually(
        lambda: _async([r for r in provider_server.requests if r.path == presence]),
        lambda found: len(found) == 1,
    )
    assert typing.headers["apikey"] == "evo-key" and typing.time >= call.time
    assert typing.json == {
        "number": "5511977776666@s.whatsapp.net",
        "presence": "composing",
        "delay": TYPING_MS,
    }
    async with sessions() as session:  # the Cloud API number's was never queued
        reads = await session.execute(
            select(InboxEvent.payload).where(
                col(InboxEvent.company_id) == uuid.UUID(tenant.id),
                col(InboxEvent.event_type) == "read",
            )
        )
        assert len(reads.all()) == 1


async def test_a_user_who_stops_marketing_messages_is_opted_out_until_they_resume(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """Meta's ``user_preferences``: ``stop`` opts the contact (found by BSUID) out of broadcasts,
    ``resume`` lifts that opt-out but never one an operator or a keyword recorded."""
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid", instance))
    [message] = await messages_stored(sessions, tenant.id, 1)
    contact_id = (await conversation_of(sessions, message)).contact_id
    ana = f"/api/v1/contacts/{contact_id}/opt-out"

    async def state(path: str) -> dict[str, Any]:
        return dict((await tenant.client.get(path)).json())

    await post(tenant, instance, delivery("cloud_user_preferences_bsuid", instance))
    stopped = await eventually(lambda: state(ana), lambda found: found["opted_out"])
    assert (stopped["source"], stopped["reason"]) == (
        "whatsapp",
        "User requested to stop marketing messages",
    )
    resume = delivery("cloud_user_preferences_bsuid", instance)
    resume["entry"][0]["changes"][0]["value"]["user_preferences"][0]["value"] = "resume"
    await post(tenant, instance, resume)
    await eventually(lambda: state(ana), lambda found: not found["opted_out"])

    # an operator's opt-out outlives a resume: shown once a later preference (a stranger's
    # stop, by phone: a new contact) was applied, the relay taking rows in order
    put = await tenant.client.put(ana, json={"reason": "asked by phone"})
    assert put.status_code == 204, put.text
    resume["entry"][0]["changes"][0]["value"]["user_preferences"][0]["timestamp"] = 1767225800
    await post(tenant, instance, resume)
    await post(tenant, instance, delivery("cloud_user_preferences", instance))
    stranger = await eventually(
        lambda: contacts_of(sessions, tenant.id), lambda found: len(found) == 2
    )
    sheena = next(c for c in stranger if c.id != contact_id)
    assert sheena.phone_number == "+16505551234" and sheena.name == "Sheena Nelson"
    await eventually(
        lambda: state(f"/api/v1/contacts/{sheena.id}/opt-out"), lambda found: found["opted_out"]
    )
    assert (await state(ana))["source"] == "api"


async def test_csv_import_attaches_bsuid_and_username_to_the_row_contact(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """An imported row's BSUID and username become its contact's identities (a BSUID held by
    another contact stays with it; a malformed one is a row error naming the column), so the
    customer writing later by BSUID alone is that contact."""
    csv_text = (
        "phone_number,name,bsuid,username\n"
        f"{ANA_PHONE},Ana,{BSUID},'@ana.lima\n"
        "+5511955554444,Bia,not-a-bsuid,\n"
    )
    response = await tenant.client.post(
        "/api/v1/contacts/import", content=csv_text.encode(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["created"] == 1
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "bsuid")]
    found = (await tenant.client.get("/api/v1/contacts", params={"q": "Ana"})).json()["data"]
    [ana] = found
    names = await identities_of(sessions, uuid.UUID(ana["id"]))
    assert {("phone", ANA_PHONE), ("bsuid", BSUID), ("username", "@ana.lima")} <= names


async def test_csv_import_of_customers_known_only_by_bsuid_or_username(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """A row without a phone is the contact holding its BSUID (else its username) or a new
    phoneless one holding them; a row with neither phone nor identity names the phone; the
    customer writing later by that BSUID is the imported contact."""

    async def upload(text: str, mode: str) -> dict[str, Any]:
        response = await tenant.client.post(
            "/api/v1/contacts/import",
            params={"mode": mode},
            content=text.encode(),
            headers={"content-type": "text/csv"},
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    first = await upload(
        f"name,bsuid,username\nMaria,{BSUID},'@maria.souza\nDora,,'@dora\nNobody,,\n"
        f"Again,{BSUID},\n",
        "skip",
    )
    assert (first["created"], first["updated"]) == (2, 0)
    errors = [(e["row"], e["field"]) for e in first["errors"]]
    assert errors == [(4, "phone_number"), (5, "bsuid")]
    second = await upload("bsuid,username,email\n,'@dora,dora@example.com\n", "update")
    assert (second["created"], second["updated"]) == (0, 1)
    contacts = {c.name: c for c in await contacts_of(sessions, tenant.id)}
    assert contacts["Dora"].email == "dora@example.com" and contacts["Dora"].phone_number is None
    maria = contacts["Maria"]
    assert await identities_of(sessions, maria.id) == {
        ("bsuid", BSUID),
        ("username", "@maria.souza"),
    }
    instance = await create_cloud_instance(tenant)
    await post(tenant, instance, delivery("cloud_bsuid", instance))
    [message] = await messages_stored(sessions, tenant.id, 1)
    assert (await conversation_of(sessions, message)).contact_id == maria.id


async def test_a_flow_runs_with_a_contact_without_a_phone(
    tenant: Tenant, sessions: SessionFactory, provider_server: ProviderServer
) -> None:
    """A username customer (BSUID only) triggers a flow, gets its buttons at the BSUID, taps
    one (a ``button_reply`` naming only ``from_user_id``) and gets the flow's answer there."""
    await published(tenant.client, CONFIRM_FLOW)
    instance = await create_cloud_instance(tenant)
    start = delivery("cloud_bsuid", instance, timestamp=str(int(time.time())))
    start["entry"][0]["changes"][0]["value"]["messages"][0]["text"] = {"body": "meu pedido"}
    await post(tenant, instance, start)

    def interactive() -> list[Any]:
        return [r for r in provider_server.sent_to(BSUID) if r.json.get("type") == "interactive"]

    await eventually(lambda: _async(interactive()), lambda found: len(found) == 1, 30)
    tap = delivery("cloud_bsuid", instance, id="wamid.TAP", timestamp=str(int(time.time())))
    message = tap["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message["type"] = "interactive"
    message["interactive"] = {"type": "button_reply", "button_reply": {"id": "yes", "title": "Sim"}}
    await post(tenant, instance, tap)

    def texts() -> list[str]:
        return [r.json["text"]["body"] for r in provider_server.sent_to(BSUID) if "text" in r.json]

    await eventually(lambda: _async(texts()), lambda found: "Pedido confirmado!" in found, 30)
    assert all("to" not in r.json for r in provider_server.sent_to(BSUID))


async def test_two_imports_of_the_same_phoneless_customers_never_deadlock(
    tenant: Tenant, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two imports name the same BSUID-only customers in opposite orders, a batch a row (an
    import is one transaction over its batches), the first held up mid-file by a contact row
    another transaction has locked. Locking each batch's identities as it came, the first held
    Bia's waiting for the row, the second held Ana's waiting for Bia's, then the first wanted
    Ana's: a deadlock, one import failing. Now each takes the company's lock on creating
    contacts before its first row: the second waits for the first, both succeed, one contact
    each."""
    monkeypatch.setattr(contact_csv, "IMPORT_BATCH", 1)
    ana, bia, gate_phone = "BR.1000000000000001", "BR.1000000000000002", "+5511966660006"
    first_file = f"phone_number,name,bsuid\n,Bia,{bia}\n{gate_phone},Gate,\n,Ana,{ana}\n"
    second_file = f"phone_number,name,bsuid\n,Ana,{ana}\n,Bia,{bia}\n"
    reports = await imports_held_up_mid_file(tenant, sessions, gate_phone, first_file, second_file)
    assert [(r.created, r.updated, r.errors) for r in reports] == [(2, 1, []), (0, 2, [])]
    contacts = await contacts_of(sessions, tenant.id)
    assert sorted(c.name for c in contacts) == ["Ana", "Bia", "Gate"]
    for contact in contacts:
        bsuid = {"Ana": ana, "Bia": bia}.get(contact.name)
        if bsuid:
            assert await identities_of(sessions, contact.id) == {("bsuid", bsuid)}


async def test_two_imports_of_the_same_phones_in_other_orders_never_deadlock(
    tenant: Tenant, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race with phones: the first import held up mid-file holds Bia's new contact
    row, the second inserted Ana's and waits for Bia's, then the first wants Ana's. Imports of
    a company now run one at a time: the second waits for the first, both succeed."""
    monkeypatch.setattr(contact_csv, "IMPORT_BATCH", 1)
    ana, bia, gate_phone = "+5511966660011", "+5511966660012", "+5511966660013"
    first_file = f"phone_number,name\n{bia},Bia\n{gate_phone},Gate\n{ana},Ana\n"
    second_file = f"phone_number,name\n{ana},Ana\n{bia},Bia\n"
    reports = await imports_held_up_mid_file(tenant, sessions, gate_phone, first_file, second_file)
    assert [(r.created, r.updated, r.errors) for r in reports] == [(2, 1, []), (0, 2, [])]
    assert sorted(c.name for c in await contacts_of(sessions, tenant.id)) == ["Ana", "Bia", "Gate"]


async def imports_held_up_mid_file(
    tenant: Tenant, sessions: SessionFactory, gate_phone: str, first_file: str, second_file: str
) -> list[ImportReport]:
    """Two imports (one transaction each, over batches of a row): the first held up at the
    contact ``gate_phone`` (its row locked by another transaction, made here) until the second
    waits for a lock too; then the gate opens. Their reports."""
    made = await tenant.client.post(
        "/api/v1/contacts", json={"name": "Gate", "phone_number": gate_phone}
    )
    assert made.status_code == 201, made.text
    pids: dict[str, int] = {}

    async def run(name: str, csv_text: str) -> ImportReport:
        async with transaction(sessions) as session:
            pids[name] = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            spool = io.BytesIO(csv_text.encode())
            return await contact_csv.import_contacts(session, uuid.UUID(tenant.id), spool, "update")

    async with sessions() as gate, gate.begin():
        row = select(Contact).where(col(Contact.id) == uuid.UUID(made.json()["id"]))
        await gate.execute(row.with_for_update())
        first = asyncio.create_task(run("first", first_file))
        await waiting_for_a_lock(sessions, pids, "first")
        second = asyncio.create_task(run("second", second_file))
        await waiting_for_a_lock(sessions, pids, "second")
    return list(await asyncio.gather(first, second))  # the gate's row released


async def test_an_import_whose_rows_all_have_a_phone_takes_no_creation_lock(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """An export imported back has ``bsuid``/``username`` columns but a phone on every row:
    it creates no contact by identity, so it does not wait for the company's creation lock
    (another import holding it here)."""
    csv_text = f"phone_number,name,bsuid,username\n{ANA_PHONE},Ana,{BSUID},'@ana.lima\n"
    async with sessions() as other_import, other_import.begin():
        await lock_creation(other_import, uuid.UUID(tenant.id), exclusive=True)
        response = await asyncio.wait_for(
            tenant.client.post(
                "/api/v1/contacts/import",
                content=csv_text.encode(),
                headers={"content-type": "text/csv"},
            ),
            10,
        )
    assert response.status_code == 200, response.text
    assert (response.json()["created"], response.json()["errors"]) == (1, [])


async def waiting_for_a_lock(sessions: SessionFactory, pids: dict[str, int], name: str) -> None:
    """Until the named import's connection waits for a lock (a row's, an advisory one)."""

    async def wait_event() -> str | None:
        if name not in pids:
            return None
        async with sessions() as session:
            found = await session.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pids[name]},
            )
            return found.scalar_one_or_none()

    await eventually(wait_event, lambda event: event == "Lock")
