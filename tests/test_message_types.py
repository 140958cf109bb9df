"""Every provider payload fixture through the real webhook, inbox, relay and ConversationWorkflow:
the stored rows must say what the normalizer read, whatever the message type. Also the group
sender, the ``@lid``/phone aliases of one person, revokes, and deliveries that carry no message."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import (
    create_cloud_instance,
    create_evolution_instance,
    eventually,
    post_cloud,
)
from tests.whatsapp.payloads import HERE, load
from zapflow.db import SessionFactory
from zapflow.models import Contact, Conversation, InboxEvent, InboxEventStatus, Message
from zapflow.services.identities import Identity, alias_key
from zapflow.whatsapp import cloud, evolution
from zapflow.whatsapp.jid import is_group, jid_from_bsuid
from zapflow.whatsapp.types import InboundMessage, PreferenceUpdate, StatusUpdate, WebhookEvent

pytestmark = pytest.mark.usefixtures("worker")

EVOLUTION_KEY = "evo-key"  # the instance api key create_evolution_instance sets

# Fixtures that carry no message: receipts, revokes, connection changes, skipped events.
# Every other fixture is a message delivery, so a new fixture is covered without listing it.
NO_MESSAGE = (
    "cloud_statuses",
    "cloud_statuses_bsuid",
    "cloud_template_status_update",
    "cloud_user_preferences",
    "cloud_user_preferences_bsuid",
    "evolution_connection_update",
    "evolution_contacts_update",
    "evolution_messages_delete",
    "evolution_messages_update",
    "evolution_messages_update_list",
    "evolution_revoke",
)
FIXTURES = sorted(path.stem for path in HERE.glob("*.json"))
WITH_MESSAGES = [name for name in FIXTURES if name not in NO_MESSAGE]

LID = "207123456789012@lid"
MARIA_JID = "5511987654321@s.whatsapp.net"
MARIA_PHONE = "+5511987654321"


def test_fixture_lists_are_consistent() -> None:
    assert set(NO_MESSAGE) <= set(FIXTURES)
    assert all(name.startswith(("cloud_", "evolution_")) for name in FIXTURES)
    assert len(WITH_MESSAGES) >= 40  # 19 Cloud API + 27 Evolution message fixtures today


# --- delivering ----------------------------------------------------------------------------


def provider_of(name: str) -> str:
    return "cloud" if name.startswith("cloud_") else "evolution"


def delivery(name: str, instance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fixture as the provider would send it to our instance (Cloud: to its number)."""
    body = load(name)
    if provider_of(name) == "evolution":
        body["apikey"] = EVOLUTION_KEY
    elif instance is not None:
        for entry in body["entry"]:
            for change in entry["changes"]:
                if "metadata" in change["value"]:
                    change["value"]["metadata"]["phone_number_id"] = instance["phone_number_id"]
    return body


def normalize(name: str, body: dict[str, Any]) -> list[WebhookEvent]:
    if provider_of(name) == "cloud":
        return list(cloud.parse_webhook(body))
    return list(evolution.parse_webhook(body))


async def create_instance(tenant: Tenant, provider: str) -> dict[str, Any]:
    if provider == "cloud":
        return await create_cloud_instance(tenant)
    return await create_evolution_instance(tenant)


async def post(tenant: Tenant, instance: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to the instance's real webhook; returns the acknowledgement."""
    if instance["provider"] == "cloud":
        response = await post_cloud(tenant.client, instance["webhook_url"], body)
    else:
        response = await tenant.client.post(instance["webhook_url"], json=body)
    assert response.status_code == 200, response.text
    return response.json()


# --- reading back --------------------------------------------------------------------------


@dataclass
class Stored:
    message: Message
    conversation: Conversation
    contact: Contact


async def stored_messages(sessions: SessionFactory, company_id: str) -> list[Stored]:
    query = (
        select(Message, Conversation, Contact)
        .join(Conversation, col(Message.conversation_id) == col(Conversation.id))
        .join(Contact, col(Conversation.contact_id) == col(Contact.id))
        .where(col(Message.company_id) == uuid.UUID(company_id))
    )
    async with sessions() as session:
        return [Stored(*row) for row in (await session.execute(query)).all()]


async def wait_for_messages(sessions: SessionFactory, company_id: str, n: int) -> list[Stored]:
    return await eventually(lambda: stored_messages(sessions, company_id), lambda r: len(r) >= n)


async def count(sessions: SessionFactory, model: Any, company_id: str) -> int:
    query = select(func.count()).select_from(model).where(model.company_id == uuid.UUID(company_id))
    async with sessions() as session:
        return (await session.execute(query)).scalar_one()


async def inbox_rows(sessions: SessionFactory, company_id: str) -> list[InboxEvent]:
    query = select(InboxEvent).where(col(InboxEvent.company_id) == uuid.UUID(company_id))
    async with sessions() as session:
        return list((await session.execute(query)).scalars())


async def message_by_key(sessions: SessionFactory, company_id: str, key_id: str) -> Message | None:
    query = select(Message).where(
        col(Message.company_id) == uuid.UUID(company_id),
        col(Message.message_key_id) == key_id,
    )
    async with sessions() as session:
        return (await session.execute(query)).scalar_one_or_none()


def as_stored(m: InboundMessage, instance_id: str) -> dict[str, Any]:
    """What the row of ``m`` must hold, derived from the normalizer's output only."""
    return {
        "instance_id": instance_id,
        "remote_jid": chat_of(m),
        "type": m.type,
        "body": m.body,
        "media": m.media,
        "payload": m.payload,
        "participant": m.participant,
        "reply_to_key_id": m.reply_to_key_id,
        "from_me": m.from_me,
        "direction": "outbound" if m.from_me else "inbound",
        "sent_by": "phone" if m.from_me else "customer",
        "status": "sent" if m.from_me else "received",
        "provider_timestamp": datetime.fromtimestamp(m.timestamp, UTC) if m.timestamp else None,
    }


def row_fields(row: Stored, with_timestamp: bool) -> dict[str, Any]:
    message = row.message
    return {
        "instance_id": str(message.instance_id),
        "remote_jid": row.conversation.remote_jid,
        "type": str(message.type),
        "body": message.body,
        "media": message.media,
        "payload": message.payload,
        "participant": message.participant,
        "reply_to_key_id": message.reply_to_key_id,
        "from_me": message.from_me,
        "direction": str(message.direction),
        "sent_by": str(message.sent_by),
        "status": str(message.status),
        "provider_timestamp": message.provider_timestamp if with_timestamp else None,
    }


# --- every message fixture -----------------------------------------------------------------


def chat_of(m: InboundMessage) -> str:
    """A new chat's key: the BSUID when Meta sends one (services/conversations.chat_keys)."""
    return jid_from_bsuid(m.user_id) if m.user_id and not is_group(m.remote_jid) else m.remote_jid


@pytest.mark.parametrize("name", WITH_MESSAGES)
async def test_message_is_stored_as_normalized(
    name: str, tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_instance(tenant, provider_of(name))
    body = delivery(name, instance)
    events = normalize(name, body)
    expected = [e for e in events if isinstance(e, InboundMessage)]
    assert expected, f"{name} carries no message: list it in NO_MESSAGE"

    ack = await post(tenant, instance, body)
    assert ack == {"stored": len(events), "duplicates": 0}
    rows = await wait_for_messages(sessions, tenant.id, len(expected))

    by_key = {row.message.message_key_id: row for row in rows}
    assert sorted(by_key) == sorted(m.key_id for m in expected)
    for m in expected:
        row = by_key[m.key_id]
        assert row_fields(row, m.timestamp is not None) == as_stored(m, instance["id"]), m.key_id
        if m.participant is None:  # a 1:1 chat: the contact is the other party
            contact = row.contact
            # a phone shared or changed by the message is the contact's, not the sender's
            phone = Identity.of_chat(m.remote_jid, [m]).phone
            assert (contact.phone_number, contact.lid) == (phone, m.lid)
            assert contact.name == (m.push_name or "")
            # the API's aliases: the contact's identities (a BSUID bare, whatever its form)
            shown = await tenant.client.get(f"/api/v1/contacts/{contact.id}")
            names = {alias_key(a)[1] for a in (m.remote_jid, *filter(None, [m.user_id]))}
            assert names <= set(shown.json()["aliases"])

    per_chat = Counter(map(chat_of, expected))
    inbound_per_chat = Counter(chat_of(m) for m in expected if not m.from_me)
    conversations = {row.conversation.id: row.conversation for row in rows}
    assert len(conversations) == len(per_chat)
    for conversation in conversations.values():
        counts = (conversation.message_count, conversation.unread_count)
        jid = conversation.remote_jid
        assert counts == (per_chat[jid], inbound_per_chat[jid]), jid
        assert conversation.workflow_id == f"conversation/{tenant.id}/{instance['id']}/{jid}"


@pytest.mark.parametrize("name", NO_MESSAGE)
async def test_delivery_without_a_message_stores_no_message(
    name: str, tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_instance(tenant, provider_of(name))
    body = delivery(name, instance)
    events = normalize(name, body)
    assert not any(isinstance(e, InboundMessage) for e in events)

    ack = await post(tenant, instance, body)
    assert ack == {"stored": len(events), "duplicates": 0}

    def relayed(rows: list[InboxEvent]) -> bool:
        # processed, or a status for an unknown message put back for a later retry
        looked_at = [r for r in rows if r.status == InboxEventStatus.PROCESSED or r.attempts > 0]
        return len(looked_at) == len(events)

    await eventually(lambda: inbox_rows(sessions, tenant.id), relayed)
    assert await count(sessions, Message, tenant.id) == 0
    assert await count(sessions, Conversation, tenant.id) == 0
    # a marketing preference keeps its person (opted out), known or not (services/opt_outs.py)
    people = sum(isinstance(e, PreferenceUpdate) for e in events)
    assert await count(sessions, Contact, tenant.id) == people


async def test_new_instance_takes_a_delivery_at_once_even_when_commits_are_slow(
    tenant: Tenant, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the API answered 201 before committing the instance (FastAPI ran the session
    dependency's exit after sending the response), so a delivery posted at once could miss it,
    and the webhook cached the miss for 10 s. A slow commit made the 404 certain."""
    commit = AsyncSession.commit

    async def slow_commit(self: AsyncSession) -> None:
        await asyncio.sleep(0.3)  # a slow WAL flush on a busy disk
        await commit(self)

    with monkeypatch.context() as patch:
        patch.setattr(AsyncSession, "commit", slow_commit)
        instance = await create_evolution_instance(tenant)
    await post(tenant, instance, delivery("evolution_conversation"))
    await wait_for_messages(sessions, tenant.id, 1)


# --- groups, aliases, revokes --------------------------------------------------------------


async def test_group_message_keeps_its_sender(tenant: Tenant, sessions: SessionFactory) -> None:
    instance = await create_evolution_instance(tenant)
    await post(tenant, instance, delivery("evolution_group"))
    [row] = await wait_for_messages(sessions, tenant.id, 1)
    assert row.conversation.remote_jid == "120363025987654321@g.us"
    assert row.message.participant == "5531991112222@s.whatsapp.net"
    assert row.message.body == "Bom dia, grupo!"
    # the group's contact is the group, not the member who wrote
    assert row.contact.phone_number is None
    shown = (await tenant.client.get(f"/api/v1/contacts/{row.contact.id}")).json()
    assert shown["aliases"] == ["120363025987654321@g.us"]


def lid_only() -> dict[str, Any]:
    """``evolution_lid`` without the phone alias: WhatsApp names the sender by its lid only."""
    body = delivery("evolution_lid")
    del body["data"]["key"]["senderPn"]
    body["data"]["key"]["id"] = "3EB0A1B2C3D4E5F607AA"
    return body


@pytest.mark.parametrize(
    ("first", "second", "chats"),
    [
        (lambda: delivery("evolution_lid"), lambda: delivery("evolution_lid_alt"), [MARIA_JID]),
        (lambda: delivery("evolution_lid_alt"), lambda: delivery("evolution_lid"), [MARIA_JID]),
        # one person, one conversation: the chat that came first keeps the later one's messages
        (lid_only, lambda: delivery("evolution_lid_alt"), [LID]),
        (lambda: delivery("evolution_lid_alt"), lid_only, [MARIA_JID]),
    ],
    ids=["lid-then-phone", "phone-then-lid", "lid-only-then-phone", "phone-then-lid-only"],
)
async def test_lid_and_phone_aliases_are_one_contact(
    first: Any, second: Any, chats: list[str], tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_evolution_instance(tenant)
    await post(tenant, instance, first())
    await wait_for_messages(sessions, tenant.id, 1)  # the contact exists before the second
    await post(tenant, instance, second())
    rows = await wait_for_messages(sessions, tenant.id, 2)

    assert await count(sessions, Contact, tenant.id) == 1
    contact = rows[0].contact
    assert (contact.phone_number, contact.lid, contact.name) == (MARIA_PHONE, LID, "Maria Souza")
    assert {row.contact.id for row in rows} == {contact.id}
    assert sorted({row.conversation.remote_jid for row in rows}) == sorted(chats)


async def test_lid_and_phone_aliases_arriving_together_are_one_contact(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """Two chats (lid-only and phone) persisted concurrently race to create the same person."""
    instance = await create_evolution_instance(tenant)
    await asyncio.gather(
        post(tenant, instance, lid_only()), post(tenant, instance, delivery("evolution_lid_alt"))
    )
    rows = await wait_for_messages(sessions, tenant.id, 2)
    assert await count(sessions, Contact, tenant.id) == 1
    assert len({row.contact.id for row in rows}) == 1
    assert (rows[0].contact.phone_number, rows[0].contact.lid) == (MARIA_PHONE, LID)


def revoked_key(name: str) -> str:
    [status] = normalize(name, delivery(name))
    assert isinstance(status, StatusUpdate)
    assert status.status == "deleted"
    return status.key_id


@pytest.mark.parametrize("revoke", ["evolution_revoke", "evolution_messages_delete"])
async def test_revoked_message_ends_deleted(
    revoke: str, tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_evolution_instance(tenant)
    await post(tenant, instance, delivery("evolution_conversation"))
    [original] = await wait_for_messages(sessions, tenant.id, 1)
    assert original.message.message_key_id == revoked_key(revoke)
    assert original.message.status == "received"

    await post(tenant, instance, delivery(revoke))
    deleted = await eventually(
        lambda: message_by_key(sessions, tenant.id, revoked_key(revoke)),
        lambda m: m is not None and m.status == "deleted",
    )
    assert deleted is not None and deleted.status_updated_at is not None
    assert deleted.body == original.message.body  # the row is kept, only marked deleted
    assert await count(sessions, Message, tenant.id) == 1  # the revoke is not a message itself


async def test_revoke_arriving_before_its_message_is_applied_once_it_is_stored(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    instance = await create_evolution_instance(tenant)
    await post(tenant, instance, delivery("evolution_revoke"))
    # the relay has seen the status and put it back: its message is not stored yet
    await eventually(
        lambda: inbox_rows(sessions, tenant.id), lambda rows: rows and rows[0].attempts > 0
    )
    await post(tenant, instance, delivery("evolution_conversation"))
    await eventually(
        lambda: message_by_key(sessions, tenant.id, revoked_key("evolution_revoke")),
        lambda m: m is not None and m.status == "deleted",
    )
    assert await count(sessions, Message, tenant.id) == 1
