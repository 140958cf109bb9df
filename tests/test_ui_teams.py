"""Teams in the browser: a supervisor builds a team, two agents make themselves available, and
switching the team to round-robin hands three waiting conversations to them in order (the
thread says so in a system note); a missed SLA target shows up live as a badge."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

from tests.fixtures.app import Tenant
from tests.fixtures.browser import open_page, screenshot, sign_in_as
from tests.test_routing import assignees, conversations
from tests.test_ui_people import PASSWORD, person


async def make_available(browser: Browser, api_url: str, email: str) -> None:
    async with open_page(browser, api_url) as tab:
        await sign_in_as(tab, email, PASSWORD)
        toggle = tab.get_by_role("button", name="Away")
        await toggle.click()
        await expect(tab.get_by_role("button", name="Available")).to_have_attribute(
            "aria-pressed", "true"
        )


async def test_round_robin_hands_three_waiting_conversations_to_two_available_agents(
    page: Page, browser: Browser, tenant: Tenant, api_url: str, worker: None
) -> None:
    supervisor = await person(tenant, api_url, "supervisor", "Sofia")
    ana = await person(tenant, api_url, "agent", "Ana")
    bia = await person(tenant, api_url, "agent", "Bia")
    ids = await conversations(tenant, 3)
    await sign_in_as(page, supervisor["email"], PASSWORD, "/app/#/teams")

    await page.get_by_label("Team name").fill("Front desk")
    await page.get_by_role("button", name="Create team").click()
    card = page.get_by_role("article", name="Front desk")
    for name in ("Ana", "Bia"):
        await card.get_by_label("Person").select_option(label=name)
        await card.get_by_role("button", name="Add member").click()
        await expect(card.locator(".members")).to_contain_text(name)
    team_id = await card.get_attribute("data-team")

    for conversation_id in ids:  # manual routing so far: they wait, in this order
        moved = await tenant.client.post(
            f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
        )
        assert moved.status_code == 200, moved.text
    for agent in (ana, bia):
        await make_available(browser, api_url, agent["email"])
    assert await assignees(tenant, ids) == [None, None, None]

    await card.get_by_label("Routing").select_option("round_robin")
    await card.get_by_role("button", name="Save team").click()
    await page.goto(f"/app/#/inbox/{ids[2]}")
    head = page.locator(".thread-head")
    # shorter than the routing sweep (30 s): the wake assigns it, though opening the thread
    # marks it read (its row locked) while the pass runs
    await expect(head.locator(".assignee")).to_have_text("Assigned to Ana", timeout=20_000)
    await expect(page.locator(".system-note[data-kind=assigned]")).to_contain_text(
        "Routing assigned it to Ana", timeout=10_000
    )
    assert await assignees(tenant, ids) == [ana["id"], bia["id"], ana["id"]]
    await screenshot(page, "assignment")


async def test_an_sla_breach_shows_live(
    page: Page, tenant: Tenant, api_url: str, worker: None
) -> None:
    agent = await person(tenant, api_url, "agent", "Caio")
    made = await tenant.client.post(
        "/api/v1/teams",
        json={"name": "Fast lane", "first_response_seconds": 3, "sla_escalation": "raise_priority"},
    )
    assert made.status_code == 201, made.text
    [conversation_id] = await conversations(tenant, 1)
    await sign_in_as(page, agent["email"], PASSWORD, f"/app/#/inbox/{conversation_id}")
    head = page.locator(".thread-head")
    await expect(head.locator(".badge.sla")).to_have_count(0)

    await head.get_by_label("Transfer to team").select_option(label="Fast lane")
    await head.get_by_role("button", name="Transfer").click()
    await expect(head.locator(".assignee")).to_have_text("Waiting for the team")
    await expect(page.locator(".system-note[data-kind=transferred]")).to_contain_text(
        "Caio transferred it to Fast lane"
    )
    # nobody answers: the conversation's workflow breaches the target, live
    await expect(head.locator(".badge.sla")).to_have_text("SLA breached", timeout=30_000)
    await expect(head.locator(".badge.priority")).to_have_text("High priority")
    row = page.locator(f".conv[data-id='{conversation_id}']")
    await expect(row.locator(".badge.sla")).to_be_visible()
    await expect(page.locator(".system-note[data-kind=sla_breached]")).to_contain_text(
        "SLA breached: first response"
    )
