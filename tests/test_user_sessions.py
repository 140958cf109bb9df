"""People sign in: invite and reset links, the session cookie and its CSRF token, fixation,
revocation seen by another API process, password changes, the sign-in throttle and roles."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.app import Tenant, in_process_api
from tests.fixtures.traffic import eventually
from zapflow.config import Settings

PASSWORD = "correct horse battery"
COOKIE = "zapflow_session"  # the tests serve plain http: no Secure, so no __Host- prefix


async def invite(tenant: Tenant, role: str = "agent", email: str | None = None) -> dict[str, Any]:
    email = email or f"p{uuid.uuid4().hex[:8]}@acme.com"
    made = await tenant.client.post(
        "/api/v1/users/invites", json={"email": email, "name": "Pat", "role": role}
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def token_of(link: dict[str, Any]) -> str:
    return str(link["link"].rsplit("/accept/", 1)[1])


class Person:
    """A browser: its own cookie jar, and the CSRF token the API told it."""

    def __init__(self, api_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=api_url, timeout=10)
        self.csrf: str | None = None

    async def post(self, path: str, json: Any = None, csrf: bool = True) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
        return await self.client.post(path, json=json, headers=headers)

    async def signed(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 200, response.text
        self.csrf = response.json()["csrf_token"]
        return response

    async def accept(self, token: str, password: str = PASSWORD) -> httpx.Response:
        return await self.signed(
            await self.client.post("/auth/accept", json={"token": token, "password": password})
        )

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.client.post("/auth/sign-in", json={"email": email, "password": password})


@pytest.fixture
async def person(api_url: str) -> Any:
    browser = Person(api_url)
    yield browser
    await browser.client.aclose()


async def test_an_invited_person_sets_a_password_and_holds_a_session_cookie(
    tenant: Tenant, person: Person
) -> None:
    link = await invite(tenant, "supervisor")
    assert link["link"].startswith("http") and "/app/#/accept/" in link["link"]
    accepted = await person.accept(token_of(link))
    cookie = accepted.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    me = (await person.client.get("/api/v1/me")).json()
    assert me["user"]["email"] == link["user"]["email"] and me["role"] == "supervisor"
    assert "teams:manage" in me["permissions"] and "users:manage" not in me["permissions"]
    # the link works once
    again = await person.client.post(
        "/auth/accept", json={"token": token_of(link), "password": PASSWORD}
    )
    assert again.status_code == 401


async def test_a_state_changing_request_needs_the_csrf_token(
    tenant: Tenant, person: Person
) -> None:
    await person.accept(token_of(await invite(tenant)))
    refused = await person.client.patch("/api/v1/me", json={"availability": "available"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    wrong = await person.client.patch(
        "/api/v1/me", json={"availability": "available"}, headers={"X-CSRF-Token": "0" * 64}
    )
    assert wrong.status_code == 403
    done = await person.client.patch(
        "/api/v1/me", json={"availability": "available"}, headers={"X-CSRF-Token": person.csrf}
    )
    assert done.status_code == 200 and done.json()["availability"] == "available"


async def test_a_planted_session_cookie_is_replaced_at_sign_in(
    tenant: Tenant, person: Person, api_url: str
) -> None:
    """Fixation: the attacker's cookie value never becomes a signed-in session."""
    link = await invite(tenant)
    await person.accept(token_of(link))
    planted = "attacker-chosen-value-0123456789abcdef"
    person.client.cookies.set(COOKIE, planted, domain="127.0.0.1")
    await person.signed(await person.sign_in(link["user"]["email"]))
    assert person.client.cookies[COOKIE] != planted
    async with httpx.AsyncClient(base_url=api_url, cookies={COOKIE: planted}) as attacker:
        assert (await attacker.get("/api/v1/me")).status_code == 401


async def test_the_session_a_browser_held_ends_when_it_signs_in_again(
    tenant: Tenant, person: Person, api_url: str
) -> None:
    link = await invite(tenant)
    await person.accept(token_of(link))
    old = person.client.cookies[COOKIE]
    await person.signed(await person.sign_in(link["user"]["email"]))
    async with httpx.AsyncClient(base_url=api_url, cookies={COOKIE: old}) as stale:
        assert (await stale.get("/api/v1/me")).status_code == 401


async def test_a_revoked_session_is_refused_by_another_api_process(
    tenant: Tenant, api_url: str, settings: Settings
) -> None:
    link = await invite(tenant)
    laptop, phone = Person(api_url), Person(api_url)
    try:
        await laptop.accept(token_of(link))
        await phone.signed(await phone.sign_in(link["user"]["email"]))
        async with in_process_api(settings) as (_, elsewhere):
            elsewhere.cookies.set(COOKIE, phone.client.cookies[COOKIE])
            assert (await elsewhere.get("/api/v1/me")).status_code == 200  # cached there now
            sessions = (await laptop.client.get("/api/v1/me/sessions")).json()
            assert [s["current"] for s in sessions] == [False, True]  # newest first: the phone
            revoked = await laptop.client.delete(
                f"/api/v1/me/sessions/{sessions[0]['id']}",
                headers={"X-CSRF-Token": laptop.csrf or ""},
            )
            assert revoked.status_code == 204

            async def status() -> int:
                return (await elsewhere.get("/api/v1/me")).status_code

            await eventually(status, lambda code: code == 401, within=2)
        assert (await laptop.client.get("/api/v1/me")).status_code == 200
    finally:
        await laptop.client.aclose()
        await phone.client.aclose()


async def test_sign_out_ends_the_session_and_clears_the_cookie(
    tenant: Tenant, person: Person
) -> None:
    await person.accept(token_of(await invite(tenant)))
    token = person.client.cookies[COOKIE]
    assert (await person.post("/api/v1/me/sign-out", csrf=False)).status_code == 403
    out = await person.post("/api/v1/me/sign-out")
    assert out.status_code == 204 and f'{COOKIE}=""' in out.headers["set-cookie"]
    person.client.cookies.set(COOKIE, token)
    assert (await person.client.get("/api/v1/me")).status_code == 401
    # an API key has no session to end
    assert (await tenant.client.post("/api/v1/me/sign-out")).status_code == 422


async def test_a_password_change_ends_the_other_sessions_and_a_reset_link_ends_all(
    tenant: Tenant, api_url: str
) -> None:
    link = await invite(tenant)
    email = link["user"]["email"]
    one, two = Person(api_url), Person(api_url)
    try:
        await one.accept(token_of(link))
        await two.signed(await two.sign_in(email))
        short = await one.post(
            "/api/v1/me/password", {"current_password": PASSWORD, "new_password": "short"}
        )
        assert short.status_code == 422 and "new_password" in short.text
        wrong = await one.post(
            "/api/v1/me/password", {"current_password": "nope", "new_password": "x" * 12}
        )
        assert wrong.status_code == 422 and "current_password" in wrong.text
        changed = await one.post(
            "/api/v1/me/password", {"current_password": PASSWORD, "new_password": "new " * 4}
        )
        assert changed.status_code == 204
        assert (await two.client.get("/api/v1/me")).status_code == 401
        assert (await one.client.get("/api/v1/me")).status_code == 200
        assert (await two.sign_in(email)).status_code == 401
        await two.signed(await two.sign_in(email, "new " * 4))

        reset = await tenant.client.post(f"/api/v1/users/{link['user']['id']}/reset-link")
        assert reset.status_code == 201 and reset.json()["kind"] == "reset"
        await two.accept(token_of(reset.json()), "after the reset")
        assert (await one.client.get("/api/v1/me")).status_code == 401
        assert (await two.client.get("/api/v1/me")).status_code == 200
    finally:
        await one.client.aclose()
        await two.client.aclose()


async def test_failed_sign_ins_lock_the_account_and_say_so(
    tenant: Tenant, person: Person, settings: Settings
) -> None:
    link = await invite(tenant)
    await person.accept(token_of(link))
    email = link["user"]["email"]
    for _ in range(settings.sign_in_failures_per_account):
        wrong = await person.sign_in(email, "not the password")
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "wrong_credentials"
    locked = await person.sign_in(email)  # even the right password
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "account_locked"
    assert "locked" in locked.json()["error"]["message"]
    assert int(locked.headers["retry-after"]) > 0
    unknown = await person.sign_in("nobody@acme.com")
    assert unknown.status_code == 401  # the same answer as a wrong password


async def test_an_agent_session_is_refused_what_agents_may_not_do(
    tenant: Tenant, person: Person
) -> None:
    await person.accept(token_of(await invite(tenant, "agent")))
    me = (await person.client.get("/api/v1/me")).json()
    assert "users:manage" not in me["permissions"]
    refused = await person.post(
        "/api/v1/users/invites", {"email": "x@acme.com", "name": "X", "role": "admin"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["permission"] == "users:manage"
    assert (await person.client.get("/api/v1/api-keys")).status_code == 403
    assert (await person.client.get("/api/v1/conversations")).status_code == 200


async def test_a_demoted_or_deactivated_user_is_signed_out(tenant: Tenant, person: Person) -> None:
    link = await invite(tenant, "supervisor")
    await person.accept(token_of(link))
    demoted = await tenant.client.patch(
        f"/api/v1/users/{link['user']['id']}", json={"role": "agent"}
    )
    assert demoted.status_code == 200
    assert (await person.client.get("/api/v1/me")).status_code == 401
    await person.signed(await person.sign_in(link["user"]["email"]))
    assert (await person.client.get("/api/v1/me")).json()["role"] == "agent"
