"""Company settings, users and API keys: validation, roles, revocation and tenant isolation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.fixtures.app import Tenant
from zapflow.db import SessionFactory, transaction
from zapflow.models import UserRole
from zapflow.services.auth import create_api_key, create_company


@asynccontextmanager
async def client_for(api_url: str, key: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as client:
        yield client


async def agent_key(sessions: SessionFactory, tenant: Tenant) -> str:
    async with transaction(sessions) as session:
        key = await create_api_key(session, uuid.UUID(tenant.id), "agent", UserRole.AGENT)
    return key.plain


@pytest.fixture
async def other(api_url: str, sessions: SessionFactory) -> AsyncIterator[Tenant]:
    """A second company, to prove the first never sees or touches its rows."""
    async with transaction(sessions) as session:
        company, key = await create_company(session, "Other Co")
    async with client_for(api_url, key.plain) as client:
        yield Tenant(str(company.id), key.plain, client)


async def add_user(client: httpx.AsyncClient, email: str, role: str = "agent") -> dict[str, Any]:
    response = await client.post("/api/v1/users", json={"email": email, "name": "U", "role": role})
    assert response.status_code == 201, response.text
    return response.json()


async def add_key(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/api-keys", json={"name": "k", **body})
    assert response.status_code == 201, response.text
    return response.json()


def error_field(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    return str(error["message"])


# company


async def test_company_is_read_and_changed(tenant: Tenant) -> None:
    company = (await tenant.client.get("/api/v1/company")).json()
    assert company["id"] == tenant.id
    assert company["name"] == "Test Co"
    assert company["timezone"] == "UTC"
    changes = {
        "timezone": "America/Sao_Paulo",
        "business_hours": {"mon": [["13:00", "18:00"], ["09:00", "12:00"]], "sat": []},
        "ai_prompt": "Você é a assistente da Acme.",
        "settings": {"rate_limit": {"default": 100}},
    }
    response = await tenant.client.patch("/api/v1/company", json=changes)
    assert response.status_code == 200, response.text
    again = (await tenant.client.get("/api/v1/company")).json()
    assert again == response.json()
    assert again["timezone"] == "America/Sao_Paulo"
    assert again["business_hours"] == {"mon": [["09:00", "12:00"], ["13:00", "18:00"]], "sat": []}
    assert again["ai_prompt"] == "Você é a assistente da Acme."
    assert again["name"] == "Test Co"  # untouched

    cleared = await tenant.client.patch("/api/v1/company", json={"ai_prompt": None})
    assert cleared.json()["ai_prompt"] is None
    assert cleared.json()["timezone"] == "America/Sao_Paulo"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"timezone": "localtime"}, "timezone", "IANA"),
        ({"timezone": "../../etc/passwd"}, "timezone", "IANA"),
        ({"business_hours": {"funday": [["09:00", "18:00"]]}}, "business_hours", ""),
        ({"business_hours": {"mon": [["9:00", "18:00"]]}}, "business_hours", "pattern"),
        ({"business_hours": {"mon": [["09:00", "24:00"]]}}, "business_hours", "pattern"),
        ({"business_hours": {"mon": [["09:00"]]}}, "business_hours", "at least 2"),
        ({"business_hours": {"mon": [["18:00", "09:00"]]}}, "business_hours", "start before"),
        ({"business_hours": {"mon": [["09:00", "09:00"]]}}, "business_hours", "start before"),
        (
            {"business_hours": {"tue": [["09:00", "12:00"], ["11:30", "14:00"]]}},
            "business_hours",
            "tue: 09:00-12:00 overlaps 11:30-14:00",
        ),
        ({"business_hours": ["09:00"]}, "business_hours", ""),
        ({"name": None}, "name", "not null"),
        ({"timezone": None}, "timezone", "not null"),
        ({"name": ""}, "name", ""),
        ({"owner": "me"}, "owner", "Extra inputs"),
        ({"settings": {"rate_limits": {"contacts": 0}}}, "settings.rate_limits.contacts", ""),
        ({"settings": {"rate_limits": {"contacts": "9"}}}, "settings.rate_limits.contacts", ""),
        ({"settings": {"rate_limits": [600]}}, "settings.rate_limits", ""),
        ({"settings": None}, "settings", "not null"),
    ],
)
async def test_company_validation_names_the_field(
    tenant: Tenant, body: dict[str, Any], field: str, says: str
) -> None:
    response = await tenant.client.patch("/api/v1/company", json=body)
    message = error_field(response)
    assert message.startswith(f"body.{field}"), message
    assert says in message
    assert (await tenant.client.get("/api/v1/company")).json()["timezone"] == "UTC"


async def test_adjacent_business_hours_are_fine(tenant: Tenant) -> None:
    hours = {"fri": [["09:00", "12:00"], ["12:00", "23:59"]]}
    response = await tenant.client.patch("/api/v1/company", json={"business_hours": hours})
    assert response.status_code == 200, response.text
    assert response.json()["business_hours"] == hours


async def test_new_rate_limits_apply_at_once(tenant: Tenant) -> None:
    assert (await tenant.client.get("/api/v1/tags")).status_code == 200  # settings now cached
    limits = {"rate_limits": {"tags": 2}, "theme": "dark"}
    response = await tenant.client.patch("/api/v1/company", json={"settings": limits})
    assert response.json()["settings"] == limits
    answers = [(await tenant.client.get("/api/v1/tags")).status_code for _ in range(3)]
    assert answers[-1] == 429, answers


# roles


async def test_agent_keys_get_403_on_admin_routes(
    tenant: Tenant, api_url: str, sessions: SessionFactory
) -> None:
    user = await add_user(tenant.client, "someone@acme.com")
    key = await add_key(tenant.client)
    async with client_for(api_url, await agent_key(sessions, tenant)) as agent:
        for method, path, body in [
            ("PATCH", "/api/v1/company", {"name": "Mine now"}),
            ("POST", "/api/v1/users", {"email": "x@acme.com", "name": "X"}),
            ("PATCH", f"/api/v1/users/{user['id']}", {"role": "admin"}),
            ("DELETE", f"/api/v1/users/{user['id']}", None),
            ("GET", "/api/v1/api-keys", None),
            ("POST", "/api/v1/api-keys", {"name": "mine", "role": "admin"}),
            ("DELETE", f"/api/v1/api-keys/{key['id']}", None),
        ]:
            response = await agent.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "forbidden"
        assert (await agent.get("/api/v1/company")).status_code == 200
        assert (await agent.get("/api/v1/users")).status_code == 200
        assert (await agent.get(f"/api/v1/users/{user['id']}")).status_code == 200
    assert (await tenant.client.get("/api/v1/company")).json()["name"] == "Test Co"


# users


async def test_users_lifecycle(tenant: Tenant) -> None:
    created = await add_user(tenant.client, "  Ana.Souza@ACME.com ")
    assert created["email"] == "ana.souza@acme.com"
    assert created["role"] == "agent"
    assert created["is_active"] is True
    assert "password_hash" not in created
    path = f"/api/v1/users/{created['id']}"
    assert (await tenant.client.get(path)).json() == created

    changed = await tenant.client.patch(path, json={"name": "Ana S.", "role": "admin"})
    assert changed.status_code == 200, changed.text
    assert changed.json() | {"name": "Ana S.", "role": "admin"} == changed.json()
    assert changed.json()["email"] == "ana.souza@acme.com"

    deactivated = await tenant.client.patch(path, json={"is_active": False})
    assert deactivated.json()["is_active"] is False
    listed = await tenant.client.get("/api/v1/users", params={"is_active": "false"})
    assert [u["id"] for u in listed.json()["data"]] == [created["id"]]

    assert (await tenant.client.delete(path)).status_code == 204
    assert (await tenant.client.get(path)).status_code == 404


async def test_user_email_is_unique_per_company(tenant: Tenant, other: Tenant) -> None:
    first = await add_user(tenant.client, "bia@acme.com")
    again = await tenant.client.post(
        "/api/v1/users", json={"email": "BIA@acme.com", "name": "Bia 2"}
    )
    assert again.status_code == 409, again.text
    assert again.json()["error"]["message"].startswith("email:")
    await add_user(other.client, "bia@acme.com")  # another company may have it

    second = await add_user(tenant.client, "carla@acme.com")
    clash = await tenant.client.patch(
        f"/api/v1/users/{second['id']}", json={"email": "Bia@Acme.com"}
    )
    assert clash.status_code == 409
    assert (await tenant.client.get(f"/api/v1/users/{first['id']}")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "name": "X"}, "email"),
        ({"email": "a@b.co", "name": "X", "role": "owner"}, "role"),
        ({"email": "a@b.co", "name": "  "}, "name"),
        ({"name": "X"}, "email"),
        ({"email": "a@b.co", "name": "X", "password": "hunter2"}, "password"),
    ],
)
async def test_user_validation_names_the_field(
    tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    assert error_field(await tenant.client.post("/api/v1/users", json=body)).startswith(
        f"body.{field}"
    )


async def test_user_update_refuses_nulls(tenant: Tenant) -> None:
    user = await add_user(tenant.client, "dani@acme.com")
    for field in ("email", "name", "role", "is_active"):
        response = await tenant.client.patch(f"/api/v1/users/{user['id']}", json={field: None})
        assert error_field(response).startswith(f"body.{field}")


async def test_users_list_is_paged_and_field_selected(tenant: Tenant) -> None:
    made = [await add_user(tenant.client, f"p{i}@acme.com") for i in range(3)]
    first = (await tenant.client.get("/api/v1/users", params={"limit": 2})).json()
    assert [u["id"] for u in first["data"]] == [made[2]["id"], made[1]["id"]]
    assert first["has_more"] is True
    rest = await tenant.client.get(
        "/api/v1/users", params={"limit": 2, "cursor": first["next_cursor"], "fields": "email"}
    )
    assert rest.json() == {
        "data": [{"id": made[0]["id"], "email": "p0@acme.com"}],
        "next_cursor": None,
        "has_more": False,
    }
    bad = await tenant.client.get("/api/v1/users", params={"fields": "password_hash"})
    assert error_field(bad).startswith("fields")
    assert error_field(await tenant.client.get("/api/v1/users", params={"limit": 101}))


# API keys


async def test_api_key_is_shown_once_and_works(tenant: Tenant, api_url: str) -> None:
    response = await tenant.client.post(
        "/api/v1/api-keys", json={"name": "CRM sync", "role": "admin"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert created["key"].startswith(created["prefix"] + "_")
    assert "only once" in created["warning"]
    assert created["role"] == "admin"
    assert created["revoked_at"] is None

    listed = (await tenant.client.get("/api/v1/api-keys")).json()["data"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert set(mine) == {
        "id", "name", "prefix", "role", "user_id", "created_at", "last_used_at", "revoked_at",
    }  # fmt: skip
    assert created["key"] not in str(listed)
    assert len(listed) == 2  # the tenant's own admin key and this one

    async with client_for(api_url, created["key"]) as client:
        assert (await client.get("/api/v1/company")).json()["id"] == tenant.id
    listed = (await tenant.client.get("/api/v1/api-keys")).json()["data"]
    assert next(k for k in listed if k["id"] == created["id"])["last_used_at"] is not None


async def test_revoked_key_is_refused_at_once(tenant: Tenant, api_url: str) -> None:
    created = await add_key(tenant.client, role="admin")
    async with client_for(api_url, created["key"]) as client:
        assert (await client.get("/api/v1/company")).status_code == 200  # now cached
        response = await tenant.client.delete(f"/api/v1/api-keys/{created['id']}")
        assert response.status_code == 204
        refused = await client.get("/api/v1/company")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
    listed = (await tenant.client.get("/api/v1/api-keys")).json()["data"]
    revoked = next(k for k in listed if k["id"] == created["id"])
    assert revoked["revoked_at"] is not None
    again = await tenant.client.delete(f"/api/v1/api-keys/{created['id']}")
    assert again.status_code == 204
    listed = (await tenant.client.get("/api/v1/api-keys")).json()["data"]
    assert next(k for k in listed if k["id"] == created["id"]) == revoked


async def test_an_admin_cannot_revoke_its_own_key(tenant: Tenant) -> None:
    listed = (await tenant.client.get("/api/v1/api-keys")).json()["data"]
    (own,) = listed
    response = await tenant.client.delete(f"/api/v1/api-keys/{own['id']}")
    assert response.status_code == 409
    assert (await tenant.client.get("/api/v1/company")).status_code == 200


async def test_key_for_a_user(tenant: Tenant, other: Tenant, api_url: str) -> None:
    agent = await add_user(tenant.client, "eva@acme.com")
    foreign = await add_user(other.client, "fred@other.com", role="admin")

    response = await tenant.client.post(
        "/api/v1/api-keys", json={"name": "k", "role": "agent", "user_id": foreign["id"]}
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("user_id:")
    response = await tenant.client.post(
        "/api/v1/api-keys", json={"name": "k", "role": "admin", "user_id": agent["id"]}
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("role:")

    key = await add_key(tenant.client, role="agent", user_id=agent["id"])
    assert key["user_id"] == agent["id"]
    await tenant.client.patch(f"/api/v1/users/{agent['id']}", json={"is_active": False})
    response = await tenant.client.post(
        "/api/v1/api-keys", json={"name": "k", "role": "agent", "user_id": agent["id"]}
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("user_id:")


async def test_deactivating_or_deleting_a_user_stops_its_keys_at_once(
    tenant: Tenant, api_url: str
) -> None:
    user = await add_user(tenant.client, "gil@acme.com")
    key = await add_key(tenant.client, user_id=user["id"])
    path = f"/api/v1/users/{user['id']}"
    async with client_for(api_url, key["key"]) as client:
        assert (await client.get("/api/v1/company")).status_code == 200
        await tenant.client.patch(path, json={"is_active": False})
        assert (await client.get("/api/v1/company")).status_code == 401
        await tenant.client.patch(path, json={"is_active": True})
        assert (await client.get("/api/v1/company")).status_code == 200
        assert (await tenant.client.delete(path)).status_code == 204
        assert (await client.get("/api/v1/company")).status_code == 401
    listed = (await tenant.client.get("/api/v1/api-keys")).json()["data"]
    assert key["id"] not in {k["id"] for k in listed}


async def test_a_demoted_users_admin_key_acts_as_an_agent(tenant: Tenant, api_url: str) -> None:
    user = await add_user(tenant.client, "hugo@acme.com", role="admin")
    key = await add_key(tenant.client, role="admin", user_id=user["id"])
    async with client_for(api_url, key["key"]) as client:
        assert (await client.get("/api/v1/api-keys")).status_code == 200
        await tenant.client.patch(f"/api/v1/users/{user['id']}", json={"role": "agent"})
        assert (await client.get("/api/v1/api-keys")).status_code == 403
        assert (await client.get("/api/v1/company")).status_code == 200


async def test_an_admin_cannot_lock_itself_out(tenant: Tenant, api_url: str) -> None:
    user = await add_user(tenant.client, "ines@acme.com", role="admin")
    key = await add_key(tenant.client, role="admin", user_id=user["id"])
    path = f"/api/v1/users/{user['id']}"
    async with client_for(api_url, key["key"]) as client:
        for change in ({"is_active": False}, {"role": "agent"}):
            assert (await client.patch(path, json=change)).status_code == 409
        assert (await client.delete(path)).status_code == 409
        renamed = await client.patch(path, json={"name": "Inês"})
        assert renamed.status_code == 200
        assert (await client.get("/api/v1/api-keys")).status_code == 200


# tenant isolation


async def test_another_companys_users_and_keys_are_not_found(tenant: Tenant, other: Tenant) -> None:
    user = await add_user(other.client, "jo@other.com")
    key = await add_key(other.client)
    for method, path, body in [
        ("GET", f"/api/v1/users/{user['id']}", None),
        ("PATCH", f"/api/v1/users/{user['id']}", {"name": "taken over"}),
        ("DELETE", f"/api/v1/users/{user['id']}", None),
        ("DELETE", f"/api/v1/api-keys/{key['id']}", None),
        ("GET", f"/api/v1/users/{uuid.uuid4()}", None),
        ("DELETE", f"/api/v1/api-keys/{uuid.uuid4()}", None),
    ]:
        response = await tenant.client.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await other.client.get(f"/api/v1/users/{user['id']}")).json() == user
    other_keys = (await other.client.get("/api/v1/api-keys")).json()["data"]
    assert next(k for k in other_keys if k["id"] == key["id"])["revoked_at"] is None


async def test_lists_show_only_the_callers_company(tenant: Tenant, other: Tenant) -> None:
    await add_user(tenant.client, "mine@acme.com")
    await add_user(other.client, "theirs@other.com")
    await add_key(other.client)
    users = (await tenant.client.get("/api/v1/users")).json()["data"]
    assert [u["email"] for u in users] == ["mine@acme.com"]
    keys = (await tenant.client.get("/api/v1/api-keys")).json()["data"]
    assert len(keys) == 1
    assert (await other.client.get("/api/v1/company")).json()["id"] == other.id
