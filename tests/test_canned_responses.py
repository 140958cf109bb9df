"""Canned responses: one's own and the company's, shortcuts unique per scope, and who may
change which."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.fixtures.app import Tenant


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
