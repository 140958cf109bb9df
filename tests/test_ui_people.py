"""People in the browser: sign in with e-mail and password, a wrong password, sign out; an agent
sees no admin settings and the server refuses them; an admin invites a person, who sets a
password through the link and is signed in; a number is set to send read receipts."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from tests.fixtures.app import Tenant
from tests.fixtures.browser import open_page, screenshot, sign_in_as
from tests.fixtures.traffic import create_evolution_instance, eventually

PASSWORD = "correct horse battery"


async def person(tenant: Tenant, api_url: str, role: str, name: str = "Pat") -> dict[str, Any]:
    """A user of ``role`` who has set PASSWORD through an invite link."""
    email = f"{name.lower()}.{uuid.uuid4().hex[:6]}@acme.com"
    made = await tenant.client.post(
        "/api/v1/users/invites", json={"email": email, "name": name, "role": role}
    )
    assert made.status_code == 201, made.text
    token = made.json()["link"].rsplit("/accept/", 1)[1]
    async with httpx.AsyncClient(base_url=api_url) as browser:
        accepted = await browser.post("/auth/accept", json={"token": token, "password": PASSWORD})
        assert accepted.status_code == 200, accepted.text
    return {"email": email, "name": name, "id": made.json()["user"]["id"]}


async def test_a_person_signs_in_with_a_password_and_signs_out(
    page: Page, tenant: Tenant, api_url: str
) -> None:
    admin = await person(tenant, api_url, "admin", "Ana")
    await page.goto("/app/")
    await page.get_by_label("E-mail").fill(admin["email"])
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")
    await screenshot(page, "signin")

    await sign_in_as(page, admin["email"], PASSWORD)
    await expect(page.locator("header .who")).to_have_text("Ana · Admin")
    await expect(page.get_by_role("link", name="Settings")).to_be_visible()
    cookies = await page.context.cookies()
    [cookie] = [c for c in cookies if c["name"] == "zapflow_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""  # scripts cannot read it

    await page.reload()  # the cookie keeps the person signed in
    await expect(page.locator(".live-status")).to_have_attribute("data-state", "live")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("E-mail")).to_be_visible()
    async with httpx.AsyncClient(base_url=api_url, cookies={cookie["name"]: cookie["value"]}) as c:
        assert (await c.get("/api/v1/me")).status_code == 401


async def test_an_agent_sees_no_settings_and_the_server_refuses_them(
    page: Page, tenant: Tenant, api_url: str
) -> None:
    agent = await person(tenant, api_url, "agent", "Beto")
    await sign_in_as(page, agent["email"], PASSWORD)
    await expect(page.get_by_role("link", name="Inbox")).to_be_visible()
    await expect(page.get_by_role("link", name="Settings")).to_have_count(0)
    await page.goto("/app/#/settings")  # typed by hand: the inbox instead
    await expect(page.locator(".invite-form")).to_have_count(0)
    # the page's own credentials (cookie + CSRF token) asking the server directly
    answer = await page.evaluate(
        """async () => {
          const me = await (await fetch('/api/v1/me')).json();
          const r = await fetch('/api/v1/users/invites', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
            body: JSON.stringify({email: 'x@acme.com', name: 'X', role: 'admin'})});
          return {status: r.status, body: await r.json()};
        }"""
    )
    assert answer["status"] == 403, answer
    assert answer["body"]["error"]["details"]["permission"] == "users:manage"


async def test_an_admin_invites_a_person_who_sets_a_password_through_the_link(
    browser: Browser, api_url: str, tenant: Tenant
) -> None:
    admin = await person(tenant, api_url, "admin", "Ana")
    number = await create_evolution_instance(tenant)
    async with open_page(browser, api_url) as page:
        await sign_in_as(page, admin["email"], PASSWORD, "/app/#/settings")
        # a number's read receipts: off (the company's default), turned on here
        receipts = page.get_by_label("Send read receipts from Support")
        await expect(receipts).not_to_be_checked()
        await receipts.check()
        await expect(page.get_by_text("Saved.")).to_be_visible()
        saved = await tenant.client.get(f"/api/v1/instances/{number['id']}")
        assert saved.json()["settings"]["mark_read"] is True
        await page.get_by_label("Their e-mail").fill("carla@acme.com")
        await page.get_by_label("Their name").fill("Carla")
        await page.get_by_label("Role").select_option("supervisor")
        await page.get_by_role("button", name="Create invite link").click()
        link = await page.get_by_label("One-time link").input_value()
        assert "/app/#/accept/" in link
        await expect(page.locator(".people")).to_contain_text("carla@acme.com")
        await screenshot(page, "settings")
    async with open_page(browser, api_url) as invited:
        await invited.goto(link)
        await invited.get_by_label("New password").fill("carla's passphrase")
        await invited.get_by_role("button", name="Set password and sign in").click()
        await expect(invited.locator("header .who")).to_have_text("Carla · Supervisor")
        await expect(invited.locator(".live-status")).to_have_attribute("data-state", "live")


async def test_an_admin_edits_the_business_hours_and_a_teams_csat(
    page: Page, tenant: Tenant, api_url: str
) -> None:
    """Zone, a day's two ranges, a holiday: saved through PATCH /company with the company's
    other settings kept; a malformed range names its day and saves nothing. Then a team's own
    rating request, in the Teams view."""
    kept = await tenant.client.patch("/api/v1/company", json={"settings": {"mark_read": True}})
    assert kept.status_code == 200, kept.text
    admin = await person(tenant, api_url, "admin", "Ana")
    await sign_in_as(page, admin["email"], PASSWORD, "/app/#/settings")
    form = page.locator("form.business-hours")
    await page.get_by_label("Time zone (IANA)").fill("America/Sao_Paulo")
    await page.get_by_label("Tuesday").fill("9-18")
    await form.get_by_role("button", name="Save hours").click()
    await expect(form.get_by_role("status")).to_have_text(
        "Tuesday: write ranges as HH:MM-HH:MM, separated by commas."
    )
    await page.get_by_label("Tuesday").fill("")
    await page.get_by_label("Monday").fill("13:00-18:00, 09:00-12:00")
    await page.get_by_label("Holidays (a date per line, YYYY-MM-DD)").fill("2026-12-25")
    await form.get_by_role("button", name="Save hours").click()
    await expect(form.get_by_role("status")).to_have_text("Business hours saved.")
    await expect(page.get_by_label("Monday")).to_have_value("09:00-12:00, 13:00-18:00")  # sorted
    company = (await tenant.client.get("/api/v1/company")).json()
    assert company["timezone"] == "America/Sao_Paulo"
    assert company["business_hours"] == {"mon": [["09:00", "12:00"], ["13:00", "18:00"]]}
    assert company["settings"]["holidays"] == ["2026-12-25"]
    assert company["settings"]["mark_read"] is True
    await page.get_by_label("Monday").fill("09:00-12:00, 11:00-18:00")  # the server's check
    await form.get_by_role("button", name="Save hours").click()
    await expect(form.get_by_role("status")).to_contain_text("overlaps")

    team = await tenant.client.post("/api/v1/teams", json={"name": "Vendas"})
    await page.goto("/app/#/teams")
    card = page.locator(f"article[data-team='{team.json()['id']}']")
    await card.get_by_label("Rating request on close").select_option("on")
    await card.get_by_label("This team's question (empty: the default)").fill("E as vendas?")
    await card.get_by_role("button", name="Save team").click()
    saved = {"enabled": True, "question": "E as vendas?"}
    await expect(card.get_by_label("This team's question (empty: the default)")).to_have_value(
        "E as vendas?"
    )
    await eventually_csat(tenant, team.json()["id"], saved)


async def eventually_csat(tenant: Tenant, team_id: str, wanted: dict[str, Any]) -> None:
    async def csat() -> Any:
        teams = (await tenant.client.get("/api/v1/teams")).json()
        return next(t["csat"] for t in teams if t["id"] == team_id)

    found = await eventually(csat, lambda got: got is not None and wanted.items() <= got.items())
    assert found["labels"][0] == "Very poor"  # the rest of the settings: their defaults
