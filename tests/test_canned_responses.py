"""Canned responses: one's own and the company's, shortcuts unique per scope, who may change
which, attachments, and reply buttons held to the interactive send's limits and sent as it sends
them (interactive on Cloud API, numbered text on Evolution)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import sent_on_both_providers
from zapflow.whatsapp.interactive import cloud_interactive, numbered_text


async def user_client(tenant: Tenant, api_url: str, role: str) -> httpx.AsyncClient:
    email = f"{role}.{uuid.uuid4().hex[:6]}@acme.com"
    user = await tenant.client.post(
        "/api/v1/users", json={"email": email, "name": role.title(), "role": role}
    )
    key = await tenant.client.post(
        "/api/v1/api-keys", json={"name": role, "role": role, "user_id": user.json()["id"]}
    )
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    return httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10)


@pytest.fixture
async def people(tenant: Tenant, api_url: str):  # type: ignore[no-untyped-def]
    clients = [await user_client(tenant, api_url, r) for r in ("supervisor", "agent", "agent")]
    yield clients
    for client in clients:
        await client.aclose()


async def test_own_and_company_canned_responses(people: list[httpx.AsyncClient]) -> None:
    supervisor, ana, bia = people
    company = await supervisor.post(
        "/api/v1/canned-responses",
        json={"shortcut": "price", "body": "Kit: R$ 150", "company_wide": True},
    )
    assert company.status_code == 201 and company.json()["user_id"] is None
    own = await ana.post(
        "/api/v1/canned-responses", json={"shortcut": "price", "body": "Oi {{contact.name}}!"}
    )
    assert own.status_code == 201 and own.json()["user_id"] is not None
    again = await ana.post("/api/v1/canned-responses", json={"shortcut": "price", "body": "x"})
    assert again.status_code == 409 and "shortcut" in again.text
    bad = await ana.post("/api/v1/canned-responses", json={"shortcut": "Preço!", "body": "x"})
    assert bad.status_code == 422 and "shortcut" in bad.text

    listed = (await ana.get("/api/v1/canned-responses")).json()
    assert [(c["shortcut"], c["user_id"] is None) for c in listed] == [
        ("price", False),  # her own first: it shadows the company's in the composer
        ("price", True),
    ]
    assert [c["id"] for c in (await bia.get("/api/v1/canned-responses")).json()] == [
        company.json()["id"]
    ]

    refused = await ana.post(
        "/api/v1/canned-responses", json={"shortcut": "hi", "body": "x", "company_wide": True}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["permission"] == "canned:manage"
    company_path = f"/api/v1/canned-responses/{company.json()['id']}"
    assert (await ana.patch(company_path, json={"body": "y"})).status_code == 403
    own_path = f"/api/v1/canned-responses/{own.json()['id']}"
    assert (await bia.delete(own_path)).status_code == 404  # another agent's own: unseen
    changed = await supervisor.patch(company_path, json={"body": "Kit: R$ 160"})
    assert changed.status_code == 200 and changed.json()["body"] == "Kit: R$ 160"
    assert (await ana.delete(own_path)).status_code == 204


async def test_a_canned_response_carries_attachments_checked_like_a_message_s_media(
    tenant: Tenant,
) -> None:
    kit = {"url": "https://example.com/kit.jpg", "kind": "image", "caption": "The kit"}
    made = await tenant.client.post(
        "/api/v1/canned-responses",
        json={"shortcut": "kit", "body": "Here it is", "company_wide": True, "attachments": [kit]},
    )
    assert made.status_code == 201, made.text
    assert made.json()["attachments"] == [
        {**kit, "mime_type": None, "filename": None}
    ]  # the shape a message's media has
    for attachments, field in (
        ([kit, {"url": "http://169.254.169.254/latest", "kind": "image"}], "attachments.1.url"),
        ([{"url": "http://10.0.0.1/x.pdf", "kind": "document"}], "attachments.0.url"),
    ):
        refused = await tenant.client.patch(
            f"/api/v1/canned-responses/{made.json()['id']}", json={"attachments": attachments}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"]["field"] == field
    for bad in ([{"url": "ftp://example.com/x", "kind": "image"}], [kit] * 6, None):
        refused = await tenant.client.patch(
            f"/api/v1/canned-responses/{made.json()['id']}", json={"attachments": bad}
        )
        assert refused.status_code == 422, (bad, refused.text)
    cleared = await tenant.client.patch(
        f"/api/v1/canned-responses/{made.json()['id']}", json={"attachments": []}
    )
    assert cleared.status_code == 200 and cleared.json()["attachments"] == []


CONFIRM = [{"id": "yes", "title": "Sim"}, {"id": "no", "title": "Não"}]


@pytest.mark.parametrize(
    ("buttons", "field"),
    [
        ([{"id": f"b{i}", "title": f"B{i}"} for i in range(4)], "buttons"),
        ([{"id": "yes", "title": "x" * 21}], "buttons.0.title"),
        ([{"id": "", "title": "Sim"}], "buttons.0.id"),
        ([{"id": "a", "title": "Sim"}, {"id": "a", "title": "Não"}], "buttons"),
        ([{"id": "a", "title": "Sim"}, {"id": "b", "title": "Sim"}], "buttons"),
        ([{"id": "a", "title": "Sim", "url": "https://example.com"}], "buttons.0.url"),
    ],
    ids=["four", "long-title", "empty-id", "same-id", "same-title", "extra-field"],
)
async def test_buttons_beyond_whatsapp_s_limits_are_422s_naming_the_field(
    buttons: list[dict[str, Any]], field: str, tenant: Tenant
) -> None:
    response = await tenant.client.post(
        "/api/v1/canned-responses",
        json={"shortcut": "ok", "body": "Ok?", "company_wide": True, "buttons": buttons},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == f"body.{field}"


async def test_a_text_with_buttons_is_held_to_the_interactive_body_s_limit(
    tenant: Tenant,
) -> None:
    made = await tenant.client.post(
        "/api/v1/canned-responses",
        json={"shortcut": "ok", "body": "x" * 1025, "company_wide": True},
    )
    assert made.status_code == 201 and made.json()["buttons"] == []  # no buttons: 4096
    path = f"/api/v1/canned-responses/{made.json()['id']}"
    refused = await tenant.client.patch(path, json={"buttons": CONFIRM})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"]["field"] == "body"
    changed = await tenant.client.patch(path, json={"body": "Ok?", "buttons": CONFIRM})
    assert changed.status_code == 200 and changed.json()["buttons"] == CONFIRM
    longer = await tenant.client.patch(path, json={"body": "y" * 1025})
    assert longer.status_code == 422 and longer.json()["error"]["details"]["field"] == "body"
    assert (await tenant.client.patch(path, json={"buttons": None})).status_code == 422


@pytest.mark.usefixtures("worker")
async def test_a_response_s_buttons_go_as_the_interactive_send_sends_them(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    """What the composer sends for a response with buttons (its filled text as the body, its
    buttons with their ids): interactive on Cloud API, numbered text on Evolution."""
    saved = await tenant.client.post(
        "/api/v1/canned-responses",
        json={"shortcut": "confirm", "body": "Confirmamos?", "company_wide": True,
              "buttons": CONFIRM},
    )  # fmt: skip
    assert saved.status_code == 201, saved.text
    [canned] = (await tenant.client.get("/api/v1/canned-responses")).json()
    spec = {"type": "button", "body": canned["body"], "buttons": canned["buttons"]}
    cloud, evolution = await sent_on_both_providers(
        tenant, provider_server, {"type": "interactive", "interactive": spec}
    )
    assert cloud["interactive"] == cloud_interactive(spec)
    assert [b["reply"]["id"] for b in cloud["interactive"]["action"]["buttons"]] == ["yes", "no"]
    assert evolution["text"] == numbered_text(spec) == "Confirmamos?\n1. Sim\n2. Não"
