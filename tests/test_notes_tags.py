"""Notes on contacts and deals (paging, authorship, tenant isolation) and the tag counts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fixtures.app import Tenant, in_process_api, recorded_statements
from tests.test_companies import client_for
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import Contact, Deal, Funnel, Stage, UserRole
from zapflow.services.auth import create_api_key, create_company


@pytest.fixture
async def other(api_url: str, sessions: SessionFactory) -> AsyncIterator[Tenant]:
    async with transaction(sessions) as session:
        company, key = await create_company(session, "Other Co")
    async with client_for(api_url, key.plain) as client:
        yield Tenant(str(company.id), key.plain, client)


async def add_contact(
    sessions: SessionFactory, tenant: Tenant, tags: list[str] | None = None
) -> str:
    async with transaction(sessions) as session:
        contact = Contact(company_id=uuid.UUID(tenant.id), name="Maria", tags=tags or [])
        session.add(contact)
    return str(contact.id)


async def add_deal(sessions: SessionFactory, tenant: Tenant) -> str:
    company_id = uuid.UUID(tenant.id)
    async with transaction(sessions) as session:
        funnel = Funnel(company_id=company_id, name="Sales")
        contact = Contact(company_id=company_id, name="João")
        session.add_all([funnel, contact])
        await session.flush()
        stage = Stage(company_id=company_id, funnel_id=funnel.id, name="New", position=0)
        session.add(stage)
        await session.flush()
        deal = Deal(
            company_id=company_id,
            title="Plano anual",
            funnel_id=funnel.id,
            stage_id=stage.id,
            contact_id=contact.id,
        )
        session.add(deal)
    return str(deal.id)


async def agent_client_key(sessions: SessionFactory, tenant: Tenant, email: str) -> tuple[str, str]:
    """An agent user and an API key acting for it: (user id, key)."""
    response = await tenant.client.post("/api/v1/users", json={"email": email, "name": email})
    user_id = response.json()["id"]
    async with transaction(sessions) as session:
        key = await create_api_key(
            session, uuid.UUID(tenant.id), email, UserRole.AGENT, uuid.UUID(user_id)
        )
    return user_id, key.plain


async def add_note(client: httpx.AsyncClient, body: str, **subject: str) -> dict[str, Any]:
    response = await client.post("/api/v1/notes", json={"body": body, **subject})
    assert response.status_code == 201, response.text
    return response.json()


def message_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["message"])


# notes


async def test_notes_on_a_contact_newest_first_and_paged(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    contact_id = await add_contact(sessions, tenant)
    elsewhere = await add_contact(sessions, tenant)
    notes = [await add_note(tenant.client, f"note {i}", contact_id=contact_id) for i in range(3)]
    await add_note(tenant.client, "not this contact's", contact_id=elsewhere)
    assert notes[0]["contact_id"] == contact_id
    assert notes[0]["deal_id"] is None
    assert notes[0]["author_user_id"] is None  # the tenant's key acts for no user

    params: dict[str, Any] = {"contact_id": contact_id, "limit": 2}
    first = (await tenant.client.get("/api/v1/notes", params=params)).json()
    assert [n["body"] for n in first["data"]] == ["note 2", "note 1"]
    assert first["has_more"] is True
    params |= {"cursor": first["next_cursor"], "fields": "body"}
    rest = (await tenant.client.get("/api/v1/notes", params=params)).json()
    assert rest == {
        "data": [{"id": notes[0]["id"], "body": "note 0"}],
        "next_cursor": None,
        "has_more": False,
    }
    fresh = await add_contact(sessions, tenant)
    empty = (await tenant.client.get("/api/v1/notes", params={"contact_id": fresh})).json()
    assert empty == {"data": [], "next_cursor": None, "has_more": False}


async def test_lists_cost_the_same_queries_whatever_the_page_size(
    tenant: Tenant, sessions: SessionFactory, settings: Settings
) -> None:
    contact_id = await add_contact(sessions, tenant, ["a", "b", "c", "d", "e", "f"])
    for i in range(6):
        await add_note(tenant.client, f"note {i}", contact_id=contact_id)
    async with in_process_api(settings, tenant.api_key) as (app, client):
        await client.get("/api/v1/tags")  # authenticates once; later requests hit the key cache
        lists = (("notes", {"contact_id": contact_id}), ("tags", {}))
        for name, params in lists:
            counts = []
            for limit in (1, 6):
                # only this app's statements (the worker and the embedder share the process),
                # and only those of the list (the app's backlog gauges may query meanwhile)
                with recorded_statements(app) as seen:
                    response = await client.get(
                        f"/api/v1/{name}", params={**params, "limit": limit}
                    )
                    assert len(response.json()["data"]) == limit
                counts.append(len([s for s in seen if name in s]))
            assert counts[0] == counts[1] <= 3, (name, counts)  # a tags page is one query


async def test_note_on_a_deal_is_edited_and_deleted(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    deal_id = await add_deal(sessions, tenant)
    note = await add_note(tenant.client, "  Proposta enviada.  ", deal_id=deal_id)
    assert note["body"] == "Proposta enviada."
    assert note["deal_id"] == deal_id
    path = f"/api/v1/notes/{note['id']}"
    assert (await tenant.client.get(path)).json() == note

    edited = await tenant.client.patch(path, json={"body": "Proposta aceita!"})
    assert edited.status_code == 200, edited.text
    assert edited.json() == note | {"body": "Proposta aceita!"}
    listed = (await tenant.client.get("/api/v1/notes", params={"deal_id": deal_id})).json()
    assert [n["body"] for n in listed["data"]] == ["Proposta aceita!"]

    assert (await tenant.client.delete(path)).status_code == 204
    assert (await tenant.client.get(path)).status_code == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"body": "x"}, "contact_id, deal_id: give exactly one"),
        ({"body": "x", "contact_id": "C", "deal_id": "D"}, "contact_id, deal_id: give exactly one"),
        ({"body": "   ", "contact_id": "C"}, "body.body"),
        ({"contact_id": "C"}, "body.body"),
        ({"body": "x", "contact_id": "not-a-uuid"}, "body.contact_id"),
        ({"body": "x", "contact_id": "C", "author_user_id": "C"}, "body.author_user_id"),
    ],
)
async def test_note_validation_names_the_field(
    tenant: Tenant, sessions: SessionFactory, body: dict[str, Any], says: str
) -> None:
    contact_id = await add_contact(sessions, tenant)
    deal_id = await add_deal(sessions, tenant)
    concrete = {k: {"C": contact_id, "D": deal_id}.get(v, v) for k, v in body.items()}
    response = await tenant.client.post("/api/v1/notes", json=concrete)
    assert message_of(response, 422).startswith(says)


async def test_note_list_needs_one_subject(tenant: Tenant) -> None:
    response = await tenant.client.get("/api/v1/notes")
    assert message_of(response, 422).startswith("contact_id, deal_id")
    both = {"contact_id": str(uuid.uuid4()), "deal_id": str(uuid.uuid4())}
    assert message_of(await tenant.client.get("/api/v1/notes", params=both), 422)
    note_id = str(uuid.uuid4())
    assert message_of(await tenant.client.patch(f"/api/v1/notes/{note_id}", json={}), 422)


async def test_agents_change_only_their_own_notes(
    tenant: Tenant, api_url: str, sessions: SessionFactory
) -> None:
    contact_id = await add_contact(sessions, tenant)
    ana_id, ana_key = await agent_client_key(sessions, tenant, "ana@acme.com")
    _, bruno_key = await agent_client_key(sessions, tenant, "bruno@acme.com")
    async with client_for(api_url, ana_key) as ana, client_for(api_url, bruno_key) as bruno:
        note = await add_note(ana, "Cliente VIP", contact_id=contact_id)
        assert note["author_user_id"] == ana_id
        path = f"/api/v1/notes/{note['id']}"
        assert (await bruno.get(path)).status_code == 200
        assert message_of(await bruno.patch(path, json={"body": "mine"}), 403)
        assert message_of(await bruno.delete(path), 403)
        assert (await ana.patch(path, json={"body": "Cliente VIP!"})).status_code == 200
        by_admin = await tenant.client.patch(path, json={"body": "Cliente VIP (admin)"})
        assert by_admin.status_code == 200
        assert by_admin.json()["author_user_id"] == ana_id
        assert (await ana.delete(path)).status_code == 204


async def test_another_companys_notes_contacts_and_deals_are_not_found(
    tenant: Tenant, other: Tenant, sessions: SessionFactory
) -> None:
    their_contact = await add_contact(sessions, other)
    their_deal = await add_deal(sessions, other)
    their_note = await add_note(other.client, "secret", contact_id=their_contact)

    for subject, field in ((their_contact, "contact_id"), (their_deal, "deal_id")):
        response = await tenant.client.post("/api/v1/notes", json={"body": "x", field: subject})
        assert message_of(response, 404).startswith(f"{field}:")
        listed = await tenant.client.get("/api/v1/notes", params={field: subject})
        assert message_of(listed, 404).startswith(f"{field}:")

    path = f"/api/v1/notes/{their_note['id']}"
    for method, body in (("GET", None), ("PATCH", {"body": "taken over"}), ("DELETE", None)):
        response = await tenant.client.request(method, path, json=body)
        assert response.status_code == 404, (method, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await other.client.get(path)).json() == their_note


# tags


async def test_tags_are_counted_most_used_first(
    tenant: Tenant, other: Tenant, sessions: SessionFactory
) -> None:
    for tags in (["vip", "lead"], ["lead"], ["lead", "Vendas"], ["vip"], [], ["vendas_sp"]):
        await add_contact(sessions, tenant, tags)
    await add_contact(sessions, other, ["lead", "secret-tag"])

    listed = (await tenant.client.get("/api/v1/tags")).json()
    assert listed["data"] == [
        {"name": "lead", "count": 3},
        {"name": "vip", "count": 2},
        {"name": "Vendas", "count": 1},
        {"name": "vendas_sp", "count": 1},
    ]
    assert (listed["total"], listed["page"], listed["pages"]) == (4, 1, 1)

    matching = (await tenant.client.get("/api/v1/tags", params={"q": "ven"})).json()
    assert [t["name"] for t in matching["data"]] == ["Vendas", "vendas_sp"]
    for wildcard in ("%", "_", "vendas%"):
        found = (await tenant.client.get("/api/v1/tags", params={"q": wildcard})).json()
        assert found["data"] == [], wildcard
    underscore = (await tenant.client.get("/api/v1/tags", params={"q": "vendas_"})).json()
    assert [t["name"] for t in underscore["data"]] == ["vendas_sp"]

    second = (await tenant.client.get("/api/v1/tags", params={"limit": 3, "page": 2})).json()
    assert second["data"] == [{"name": "vendas_sp", "count": 1}]
    assert (second["total"], second["pages"]) == (4, 2)
    assert message_of(await tenant.client.get("/api/v1/tags", params={"page": 0}), 422)


async def test_a_company_without_tags(tenant: Tenant) -> None:
    listed = (await tenant.client.get("/api/v1/tags")).json()
    assert listed == {
        "data": [],
        "total": 0,
        "total_exact": True,
        "page": 1,
        "pages": 0,
        "limit": 100,
    }
