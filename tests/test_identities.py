"""Business-scoped user ids (BSUIDs), usernames and number changes, through the real webhook,
inbox, relay and ConversationWorkflow: one person stays one contact, found by BSUID first, and
replies go to the phone when one is known, else to the BSUID."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import create_cloud_instance, eventually, post_cloud
from tests.whatsapp.payloads import load
from zapflow.db import SessionFactory
from zapflow.models import Contact, ContactIdentity, Conversation, Message
from zapflow.services.identities import Identity, alias_key
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
    row = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    assert row["contact"]["phone_number"] is None
    found = (await tenant.client.get("/api/v1/contacts", params={"q": "Ana"})).json()["data"]
    assert [c["phone_number"] for c in found] == [None]
    export = await tenant.client.get("/api/v1/contacts/export")
    assert export.status_code == 200
    assert export.text.splitlines()[1].startswith(",Ana,")


async def test_bsuid_chat_and_phone_chat_arriving_together_are_one_contact(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """Two chats of one person (keyed by BSUID and by phone) persisted at once race to create
    the contact: the identities' advisory locks let one create it and the other find it."""
    instance = await create_cloud_instance(tenant)
    await asyncio.gather(
        post(tenant, instance, delivery("cloud_bsuid", instance)),
        post(tenant, instance, delivery("cloud_bsuid_with_phone", instance)),
    )
    rows = await messages_stored(sessions, tenant.id, 2)
    assert len({(await conversation_of(sessions, m)).remote_jid for m in rows}) == 2
    [contact] = await contacts_of(sessions, tenant.id)
    assert contact.phone_number == "+5511987654321"
    assert ("bsuid", BSUID) in await identities_of(sessions, contact.id)


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
