"""The inbox API: conversations listed (order, filters, cursor paging, fields), read one by one,
and acted on (assign, pause, close, read) with live events, idempotently, within one company."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from tests.fixtures.app import Tenant, in_process_api, recorded_statements
from tests.fixtures.traffic import (
    EventListener,
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    post_cloud,
)
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import Contact, Conversation, EventOutbox, Message, User, UserRole
from zapflow.schemas.conversations import ConversationPublic
from zapflow.schemas.messages import MessagePublic
from zapflow.services.auth import create_api_key, create_company
from zapflow.services.conversations import (
    bump_conversation,
    insert_messages,
    refresh_previews,
    upsert_conversation,
)
from zapflow.services.identities import Identity, resolve_contact
from zapflow.whatsapp import jid as jids
from zapflow.whatsapp.types import InboundMessage

BASE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
_numbers = itertools.count(1)


@dataclass
class Inbox:
    """Writes a company's conversations straight to the database, the way the pipeline does."""

    sessions: SessionFactory
    company_id: uuid.UUID
    instance_id: uuid.UUID

    async def add(
        self,
        minute: float,
        *,
        name: str = "Maria",
        phone: str | None = None,
        tags: tuple[str, ...] = (),
        instance_id: uuid.UUID | None = None,
        inbound: int = 0,
        **columns: Any,
    ) -> str:
        """A conversation whose last message came at BASE + ``minute``; ``columns`` set others."""
        phone = phone or f"+55119{next(_numbers):08d}"
        remote_jid = jids.jid_from_phone(phone)
        instance_id = instance_id or self.instance_id
        async with transaction(self.sessions) as session:
            identity = Identity(phone=phone, lid=None, aliases=(remote_jid,), name=name)
            contact_id = (await resolve_contact(session, self.company_id, identity)).id
            conversation_id = await upsert_conversation(
                session, self.company_id, instance_id, remote_jid, contact_id
            )
            if inbound:
                messages = [_inbound(remote_jid, i) for i in range(inbound)]
                new = await insert_messages(
                    session, messages, self.company_id, instance_id, conversation_id
                )
                await bump_conversation(session, conversation_id, new)
            await session.execute(
                update(Contact).where(Contact.id == contact_id).values(tags=list(tags))
            )
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(last_message_at=BASE + timedelta(minutes=minute), **columns)
            )
        return str(conversation_id)

    async def add_many(self, count: int, **kwargs: Any) -> list[str]:
        """``count`` conversations, newest first (as the inbox lists them)."""
        return [await self.add(minute, **kwargs) for minute in range(count, 0, -1)]

    async def user(self, *, active: bool = True, company_id: uuid.UUID | None = None) -> str:
        async with transaction(self.sessions) as session:
            user = User(
                company_id=company_id or self.company_id,
                email=f"{uuid.uuid4().hex[:10]}@example.com",
                name="Ana",
                role=UserRole.AGENT,
                is_active=active,
            )
            session.add(user)
            await session.flush()
        return str(user.id)


def _inbound(remote_jid: str, index: int) -> InboundMessage:
    return InboundMessage(
        key_id=f"wamid.{uuid.uuid4().hex}",
        remote_jid=remote_jid,
        from_me=False,
        type="text",
        provider="cloud",
        body=f"message {index}",
        timestamp=int(BASE.timestamp()) + index,
    )


@pytest.fixture
async def instance(tenant: Tenant) -> dict[str, Any]:
    return await create_cloud_instance(tenant)


@pytest.fixture
async def inbox(tenant: Tenant, sessions: SessionFactory, instance: dict[str, Any]) -> Inbox:
    return Inbox(sessions, uuid.UUID(tenant.id), uuid.UUID(instance["id"]))


@pytest.fixture
async def outsider(api_url: str, sessions: SessionFactory) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client of another company."""
    async with transaction(sessions) as session:
        _, key = await create_company(session, "Other Co")
    headers = {"Authorization": f"Bearer {key.plain}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as client:
        yield client


async def _agent_client(
    api_url: str, sessions: SessionFactory, company_id: str, user_id: str | None
) -> httpx.AsyncClient:
    async with transaction(sessions) as session:
        key = await create_api_key(
            session,
            uuid.UUID(company_id),
            "agent",
            UserRole.AGENT,
            uuid.UUID(user_id) if user_id else None,
        )
    headers = {"Authorization": f"Bearer {key.plain}"}
    return httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10)


async def _list(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/conversations", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    return [row["id"] for row in (await _list(client, limit=100, **params))["data"]]


async def _walk(
    client: httpx.AsyncClient, cursor: str | None = None, **params: Any
) -> list[list[str]]:
    """Every page's ids from ``cursor`` on, following next_cursor to the end."""
    pages: list[list[str]] = []
    while True:
        page = await _list(client, **params, **({"cursor": cursor} if cursor else {}))
        pages.append([row["id"] for row in page["data"]])
        assert page["has_more"] is (page["next_cursor"] is not None)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


# --- the list: order, rows, paging ----------------------------------------------------------


async def test_a_rewritten_message_refreshes_its_conversations_preview_if_still_the_latest(
    tenant: Tenant, inbox: Inbox, sessions: SessionFactory
) -> None:
    """A campaign edited while paused rewrites its queued messages in place: a conversation
    whose latest message one is shows the new text (announced); another keeps its own."""
    latest, earlier = await inbox.add(1, inbound=1), await inbox.add(2, inbound=2)
    async with transaction(sessions) as session:
        rows = await session.scalars(
            select(Message).where(col(Message.conversation_id).in_([latest, earlier]))
        )
        by_body = {(str(m.conversation_id), m.body): m for m in rows}
        rewritten = [by_body[(latest, "message 0")], by_body[(earlier, "message 0")]]
        for message in rewritten:
            message.body = "Oi Nova, cupom novo"
        await refresh_previews(session, rewritten)
        staged = await session.scalars(  # the events this transaction will publish
            select(EventOutbox).where(
                col(EventOutbox.company_id) == uuid.UUID(tenant.id),
                col(EventOutbox.event_type) == "conversation.updated",
            )
        )
        [event] = [e.payload["data"] for e in staged]
    assert event["id"] == latest and event["last_message_preview"] == "Oi Nova, cupom novo"
    async with sessions() as session:
        previews = {
            str(c.id): c.last_message_preview
            for c in await session.scalars(
                select(Conversation).where(col(Conversation.id).in_([latest, earlier]))
            )
        }
    assert previews == {latest: "Oi Nova, cupom novo", earlier: "message 1"}


async def test_the_list_is_newest_first_with_contact_and_instance(
    tenant: Tenant, inbox: Inbox
) -> None:
    middle = await inbox.add(2, name="Bruno", phone="+5511911110002")
    newest = await inbox.add(3, name="Carla", phone="+5511911110003")
    oldest = await inbox.add(1, name="Ana", phone="+5511911110001")
    page = await _list(tenant.client)
    assert [row["id"] for row in page["data"]] == [newest, middle, oldest]
    assert page["next_cursor"] is None and page["has_more"] is False
    row = page["data"][0]
    assert row["contact"]["name"] == "Carla"
    assert row["contact"]["phone_number"] == "+5511911110003"
    assert row["contact"]["id"] == row["contact_id"]
    assert row["instance_name"] == "Sales"
    assert row["instance_id"] == str(inbox.instance_id)
    assert row["last_message_at"] == (BASE + timedelta(minutes=3)).isoformat().replace(
        "+00:00", "Z"
    )
    assert row["status"] == "open" and row["is_paused"] is False


async def test_list_rows_are_what_the_public_model_writes(tenant: Tenant, inbox: Inbox) -> None:
    """The list is written from columns without building ConversationPublic: each row must be
    exactly what the model (the OpenAPI schema) would write, timestamps' form included."""
    user = await inbox.user()
    await inbox.add(1, name="Ana", inbound=2, assigned_user_id=uuid.UUID(user), is_paused=True)
    await inbox.add(2.000001, name="Bruno")  # a timestamp with microseconds
    rows = (await _list(tenant.client))["data"]
    assert len(rows) == 2
    for row in rows:
        assert ConversationPublic.model_validate(row).model_dump(mode="json") == row


async def test_message_pages_are_what_the_public_model_writes(
    tenant: Tenant, other_tenant: Tenant, inbox: Inbox
) -> None:
    """The message page is one statement with its tenancy check, written from columns: each
    row exactly what MessagePublic writes; cursor pages newest first without gaps or repeats;
    a conversation without messages is an empty page, another company's a 404."""
    conversation = await inbox.add(1, inbound=5)
    path = f"/api/v1/conversations/{conversation}/messages"
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(3):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await tenant.client.get(path, params=params)).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
    assert cursor is None
    assert sorted(m["body"] for m in seen) == [f"message {i}" for i in range(5)]
    order = [(m["created_at"], m["id"]) for m in seen]
    assert order == sorted(order, reverse=True)
    for row in seen:
        assert MessagePublic.model_validate(row).model_dump(mode="json") == row
    sparse = (await tenant.client.get(path, params={"limit": 1, "fields": "body"})).json()
    assert sparse["data"] == [{"id": seen[0]["id"], "body": seen[0]["body"]}]

    empty = await inbox.add(2)
    page = (await tenant.client.get(f"/api/v1/conversations/{empty}/messages")).json()
    assert page == {"data": [], "next_cursor": None, "has_more": False}
    theirs = await other_tenant.client.get(path)
    assert theirs.status_code == 404, theirs.text
    missing = await tenant.client.get(f"/api/v1/conversations/{uuid.uuid4()}/messages")
    assert missing.status_code == 404


async def test_an_empty_inbox(tenant: Tenant) -> None:
    assert await _list(tenant.client) == {"data": [], "next_cursor": None, "has_more": False}


async def test_pages_cover_every_conversation_once_in_order(tenant: Tenant, inbox: Inbox) -> None:
    expected = await inbox.add_many(25)
    pages = await _walk(tenant.client, limit=10)
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in p] == expected


async def test_a_full_last_page_has_no_next_cursor(tenant: Tenant, inbox: Inbox) -> None:
    expected = await inbox.add_many(10)
    exact = await _list(tenant.client, limit=10)
    assert [r["id"] for r in exact["data"]] == expected
    assert exact["next_cursor"] is None and exact["has_more"] is False
    assert await _walk(tenant.client, limit=5) == [expected[:5], expected[5:]]


async def test_ties_on_last_message_at_page_by_id(tenant: Tenant, inbox: Inbox) -> None:
    newest = await inbox.add(6)
    tied = [await inbox.add(5) for _ in range(7)]
    oldest = await inbox.add(4)
    expected = [newest, *sorted(tied, reverse=True), oldest]
    pages = await _walk(tenant.client, limit=3)
    assert [i for p in pages for i in p] == expected


async def test_a_cursor_stays_valid_after_inserts(tenant: Tenant, inbox: Inbox) -> None:
    first_ten = await inbox.add_many(10)  # minutes 10 .. 1
    page = await _list(tenant.client, limit=4)
    assert [r["id"] for r in page["data"]] == first_ten[:4]
    newer = [await inbox.add(100 + i) for i in range(3)]
    older = await inbox.add(0.5)  # after the cursor: it belongs to a later page
    rest = await _walk(tenant.client, limit=4, cursor=page["next_cursor"])
    seen = [i for p in rest for i in p]
    assert seen == [*first_ten[4:], older]
    assert not set(newer) & set(seen)
    assert (await _ids(tenant.client))[:3] == newer[::-1]


async def test_bad_cursors_and_limits_are_422(tenant: Tenant, inbox: Inbox) -> None:
    await inbox.add_many(2)
    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJ4Il0"},  # a well-formed list of the wrong shape
        {"limit": 101},
        {"limit": 0},
        {"status": "pending"},
        {"updated_since": "2025-03-01T12:00:00"},  # no offset: ambiguous
        {"assigned_user_id": "nope"},
    ):
        response = await tenant.client.get("/api/v1/conversations", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] in {"validation_error", "invalid_cursor"}


async def test_a_cursor_from_another_filter_or_company_is_only_a_position(
    tenant: Tenant, inbox: Inbox, outsider: httpx.AsyncClient
) -> None:
    ids = await inbox.add_many(6)
    await inbox.add(3.5, status="closed")
    cursor = (await _list(tenant.client, limit=2))["next_cursor"]
    closed_after = await _list(tenant.client, status="closed", cursor=cursor)
    assert [r["status"] for r in closed_after["data"]] == ["closed"]
    closed = closed_after["data"][0]["id"]
    assert await _ids(tenant.client, cursor=cursor) == [ids[2], closed, *ids[3:]]
    assert await _ids(outsider, cursor=cursor) == []


async def test_sparse_fields(tenant: Tenant, inbox: Inbox) -> None:
    conversation_id = await inbox.add(1, name="Dora")
    page = await _list(tenant.client, fields="contact,unread_count")
    assert page["data"] == [
        {
            "id": conversation_id,
            "unread_count": 0,
            "contact": page["data"][0]["contact"],
        }
    ]
    assert page["data"][0]["contact"]["name"] == "Dora"
    one = await tenant.client.get(
        f"/api/v1/conversations/{conversation_id}", params={"fields": "status"}
    )
    assert one.json() == {"id": conversation_id, "status": "open"}
    unknown = await tenant.client.get("/api/v1/conversations", params={"fields": "id,secret"})
    assert unknown.status_code == 422
    assert "secret" in unknown.json()["error"]["message"]


# --- filters ----------------------------------------------------------------------------------


async def test_each_filter(tenant: Tenant, inbox: Inbox, instance: dict[str, Any]) -> None:
    agent = await inbox.user()
    other_instance = await create_cloud_instance(tenant)
    plain = await inbox.add(9, name="Zé", phone="+5521988880000")
    closed = await inbox.add(8, status="closed")
    mine = await inbox.add(7, assigned_user_id=uuid.UUID(agent))
    paused = await inbox.add(6, is_paused=True)
    vip = await inbox.add(5, tags=("vip", "b2b"))
    vip_only = await inbox.add(4, tags=("vip",))
    elsewhere = await inbox.add(3, instance_id=uuid.UUID(other_instance["id"]))
    recent = await inbox.add(2, updated_at=datetime.now(UTC) + timedelta(days=1))
    everyone = [plain, closed, mine, paused, vip, vip_only, elsewhere, recent]

    assert await _ids(tenant.client) == everyone
    assert await _ids(tenant.client, status="closed") == [closed]
    assert closed not in await _ids(tenant.client, status="open")
    assert await _ids(tenant.client, assigned_user_id=agent) == [mine]
    assert await _ids(tenant.client, unassigned="true") == [i for i in everyone if i != mine]
    assert await _ids(tenant.client, unassigned="false") == [mine]
    assert await _ids(tenant.client, paused="true") == [paused]
    assert paused not in await _ids(tenant.client, paused="false")
    assert await _ids(tenant.client, tag="vip") == [vip, vip_only]
    assert await _ids(tenant.client, tag=["vip", "b2b"]) == [vip]
    assert await _ids(tenant.client, tag="nobody") == []
    assert await _ids(tenant.client, instance_id=other_instance["id"]) == [elsewhere]
    assert elsewhere not in await _ids(tenant.client, instance_id=instance["id"])
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await _ids(tenant.client, updated_since=since) == [recent]


async def test_search_by_name_or_phone_prefix(tenant: Tenant, inbox: Inbox) -> None:
    maria = await inbox.add(3, name="Maria Souza", phone="+5511977770001")
    mario = await inbox.add(2, name="mário", phone="+5521977770002")
    percent = await inbox.add(1, name="100% Rosa", phone="+5531977770003")
    assert await _ids(tenant.client, q="mar") == [maria]
    assert await _ids(tenant.client, q="MÁR") == [mario]
    assert await _ids(tenant.client, q="+55 11") == [maria]
    assert await _ids(tenant.client, q="5521") == [mario]
    assert await _ids(tenant.client, q="55") == [maria, mario, percent]
    assert await _ids(tenant.client, q="100%") == [percent]
    assert await _ids(tenant.client, q="%") == []  # a wildcard is only a character
    assert await _ids(tenant.client, q="_") == []
    assert await _ids(tenant.client, q="Souza") == []  # a prefix, not a substring
    too_long = await tenant.client.get("/api/v1/conversations", params={"q": "x" * 101})
    assert too_long.status_code == 422


async def test_filters_combine_and_page(tenant: Tenant, inbox: Inbox) -> None:
    wanted = [await inbox.add(20 - i, name="Vera", tags=("vip",), is_paused=True) for i in range(5)]
    await inbox.add(30, name="Vera", tags=("vip",))  # not paused
    await inbox.add(31, name="Vera", tags=("vip",), is_paused=True, status="closed")
    await inbox.add(32, name="Otto", tags=("vip",), is_paused=True)
    await inbox.add(33, name="Vera", is_paused=True)  # no tag
    params = {"status": "open", "paused": "true", "tag": "vip", "q": "ver", "unassigned": "true"}
    pages = await _walk(tenant.client, limit=2, **params)
    assert pages == [wanted[:2], wanted[2:4], wanted[4:]]


async def test_assigned_to_me(
    tenant: Tenant, inbox: Inbox, api_url: str, sessions: SessionFactory
) -> None:
    me = await inbox.user()
    someone = await inbox.user()
    mine = await inbox.add(2, assigned_user_id=uuid.UUID(me))
    await inbox.add(1, assigned_user_id=uuid.UUID(someone))
    await inbox.add(0)
    async with await _agent_client(api_url, sessions, tenant.id, me) as agent:
        assert await _ids(agent, assigned="me") == [mine]
        assert await _ids(agent, assigned="me", assigned_user_id=me) == [mine]
        conflicting = await agent.get(
            "/api/v1/conversations", params={"assigned": "me", "assigned_user_id": someone}
        )
        assert conflicting.status_code == 422
    keyless = await tenant.client.get("/api/v1/conversations", params={"assigned": "me"})
    assert keyless.status_code == 422
    assert keyless.json()["error"]["message"].startswith("assigned:")
    other_value = await tenant.client.get("/api/v1/conversations", params={"assigned": "you"})
    assert other_value.status_code == 422


# --- one conversation and its actions ---------------------------------------------------------


async def test_one_conversation_with_contact_and_counts(tenant: Tenant, inbox: Inbox) -> None:
    conversation_id = await inbox.add(1, name="Eva", phone="+5511966660001", inbound=3)
    response = await tenant.client.get(f"/api/v1/conversations/{conversation_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == conversation_id
    assert body["contact"] == {
        "id": body["contact_id"],
        "name": "Eva",
        "phone_number": "+5511966660001",
    }
    assert (body["message_count"], body["unread_count"]) == (3, 3)
    assert body["last_message_preview"] == "message 2"
    assert body["instance_name"] == "Sales"
    missing = await tenant.client.get(f"/api/v1/conversations/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_each_action_changes_once_and_announces_it(tenant: Tenant, inbox: Inbox) -> None:
    agent = await inbox.user()
    conversation_id = await inbox.add(1, inbound=2)
    path = f"/api/v1/conversations/{conversation_id}"
    steps: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = [
        ("read", None, {"unread_count": 0}),
        ("assign", {"user_id": agent}, {"assigned_user_id": agent}),
        ("unassign", None, {"assigned_user_id": None}),
        ("pause", None, {"is_paused": True}),
        ("resume", None, {"is_paused": False}),
        ("close", None, {"status": "closed"}),
        ("reopen", None, {"status": "open"}),
    ]
    async with EventListener(tenant.client) as listener:
        for done, (action, body, expected) in enumerate(steps, start=1):
            for _ in range(2):  # the repeat is a 200 that changes nothing
                response = await tenant.client.post(f"{path}/{action}", json=body)
                assert response.status_code == 200, (action, response.text)
                assert expected.items() <= response.json().items(), action
                assert response.json()["contact"]["name"] == "Maria"
            events = await listener.wait_for(
                "conversation.updated", lambda e, done=done: len(e) >= done
            )
            assert len(events) == done, f"{action}: one event, not one per call"
            assert events[-1]["conversation_id"] == conversation_id
            assert expected.items() <= events[-1]["data"].items(), action
    final = (await tenant.client.get(path)).json()
    assert (final["status"], final["is_paused"], final["assigned_user_id"]) == ("open", False, None)
    assert final["unread_count"] == 0


async def test_concurrent_repeats_change_once(tenant: Tenant, inbox: Inbox) -> None:
    path = f"/api/v1/conversations/{await inbox.add(1)}"
    async with EventListener(tenant.client) as listener:
        answers = await asyncio.gather(*(tenant.client.post(f"{path}/pause") for _ in range(5)))
        assert [a.status_code for a in answers] == [200] * 5
        assert all(a.json()["is_paused"] for a in answers)
        await listener.wait_for("conversation.updated", lambda e: len(e) >= 1)
        await tenant.client.post(f"{path}/resume")  # a marker: its event comes after any repeat
        events = await listener.wait_for("conversation.updated", lambda e: len(e) >= 2)
    assert [e["data"]["is_paused"] for e in events] == [True, False]


async def test_an_action_moves_the_conversation_into_updated_since(
    tenant: Tenant, inbox: Inbox
) -> None:
    conversation_id = await inbox.add(1, updated_at=BASE)
    await inbox.add(2, updated_at=BASE)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert await _ids(tenant.client, updated_since=since) == []
    await tenant.client.post(f"/api/v1/conversations/{conversation_id}/close")
    assert await _ids(tenant.client, updated_since=since) == [conversation_id]


async def test_assign_needs_an_active_user_of_the_company(
    tenant: Tenant, inbox: Inbox, sessions: SessionFactory
) -> None:
    conversation_id = await inbox.add(1)
    inactive = await inbox.user(active=False)
    async with transaction(sessions) as session:
        other_company, _ = await create_company(session, "Other Co")
    foreign = await inbox.user(company_id=other_company.id)
    path = f"/api/v1/conversations/{conversation_id}/assign"
    for user_id in (str(uuid.uuid4()), inactive, foreign):
        response = await tenant.client.post(path, json={"user_id": user_id})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["message"].startswith("user_id:")
        assert error["details"][0]["field"] == "body.user_id"
    for body in ({}, {"user_id": "nope"}, {"user_id": foreign, "extra": 1}):
        response = await tenant.client.post(path, json=body)
        assert response.status_code == 422
        assert "user_id" in response.text or "extra" in response.text
    unchanged = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    assert unchanged["assigned_user_id"] is None


async def test_another_companys_conversation_is_not_found_on_every_route(
    tenant: Tenant, inbox: Inbox, outsider: httpx.AsyncClient
) -> None:
    conversation_id = await inbox.add(1, inbound=1)
    agent = await inbox.user()
    path = f"/api/v1/conversations/{conversation_id}"
    assert (await outsider.get(path)).status_code == 404
    actions = ("unassign", "pause", "resume", "close", "reopen", "read")
    for action in actions:
        response = await outsider.post(f"{path}/{action}")
        assert response.status_code == 404, action
        assert response.json()["error"]["code"] == "not_found"
    # the conversation is checked first: a 404, whoever the user is
    assigned = await outsider.post(f"{path}/assign", json={"user_id": agent})
    assert assigned.status_code == 404
    assert await _ids(outsider) == []
    untouched = (await tenant.client.get(path)).json()
    assert (untouched["status"], untouched["is_paused"], untouched["unread_count"]) == (
        "open",
        False,
        1,
    )
    assert untouched["assigned_user_id"] is None


# --- through the pipeline; query counts --------------------------------------------------------


@pytest.mark.usefixtures("worker")
async def test_a_conversation_from_a_webhook_is_listed(
    tenant: Tenant, instance: dict[str, Any]
) -> None:
    delivery = cloud_delivery(
        instance["phone_number_id"],
        cloud_text("5511955554444", "wamid.CV1", "oi, tudo bem?", int(time.time()), name="Lia"),
    )
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200
    page = await eventually(lambda: _list(tenant.client, q="lia"), lambda p: len(p["data"]) == 1)
    row = page["data"][0]
    assert row["contact"]["phone_number"] == "+5511955554444"
    assert row["last_message_preview"] == "oi, tudo bem?"
    assert row["unread_count"] == 1


async def test_the_list_costs_the_same_queries_for_any_page_size(
    tenant: Tenant, inbox: Inbox, settings: Settings
) -> None:
    await inbox.add_many(60, tags=("vip",))
    async with in_process_api(settings, tenant.api_key) as (app, client):
        await _list(client, limit=1)  # authenticates once; later requests hit the key cache
        counts = {}
        with recorded_statements(app) as statements:
            for limit in (5, 50):
                statements.clear()
                page = await _list(client, limit=limit, tag="vip")
                assert len(page["data"]) == limit
                # the app's background tasks (the backlog gauges) may query meanwhile
                counts[limit] = len([s for s in statements if "FROM conversations" in s])
    assert counts[5] == counts[50] == 1, statements
