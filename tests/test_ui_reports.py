"""The Reports page in the browser: a supervisor sees its charts drawn from seeded data (the
seed's resolutions, ratings, SLA targets and hourly rollups); an agent has no Reports link and
the server refuses the agent anyway."""

from __future__ import annotations

import uuid

from playwright.async_api import Browser, Page, expect

from tests.fixtures.app import Tenant
from tests.fixtures.browser import open_page, screenshot, sign_in_as
from tests.test_ui_people import PASSWORD, person
from zapflow.config import Settings
from zapflow.db import create_engine
from zapflow.seed import SeedOptions, seed_demo


async def test_the_reports_page_draws_charts_on_seeded_data(
    page: Page, browser: Browser, tenant: Tenant, api_url: str, settings: Settings
) -> None:
    engine = create_engine(settings, pool_size=1)
    try:
        options = SeedOptions(contacts=300, messages=6_000, company_id=uuid.UUID(tenant.id))
        await seed_demo(engine, options)
    finally:
        await engine.dispose()
    supervisor = await person(tenant, api_url, "supervisor", "Sara")
    await sign_in_as(page, supervisor["email"], PASSWORD, "/app/#/reports")

    charts = page.locator(".report-grid figure")
    await expect(charts).to_have_count(7)
    await expect(page.locator(".report-grid rect.bar").first).to_be_visible()
    assert await page.locator("figure:has-text('Conversations per day') rect.bar").count() > 10
    assert await page.locator("figure:has-text('resolution time') path.line").count() == 3
    assert await page.locator("figure:has-text('SLA met %') circle.dot").count() > 5
    assert await page.locator(".heatmap rect.heat").count() == 7 * 24
    csat = page.locator("figure:has-text('CSAT')")
    await expect(csat.locator("figcaption")).to_contain_text("ratings of")
    rows = page.locator(".report-table tbody tr")
    await expect(rows.first).to_contain_text(" ")  # the agents' table filled
    assert await rows.count() >= 2
    await page.get_by_label("By").select_option("team")
    await expect(page.locator(".report-table tbody")).to_contain_text("Suporte")
    support = page.locator(".report-table tbody tr", has_text="Suporte")
    await expect(support).to_contain_text("%")  # its SLA met
    await screenshot(page, "reports")

    agent = await person(tenant, api_url, "agent", "Beto")
    async with open_page(browser, api_url) as tab:
        await sign_in_as(tab, agent["email"], PASSWORD, "/app/#/reports")
        await expect(tab.locator("nav")).not_to_contain_text("Reports")
        await expect(tab.locator(".reports")).to_have_count(0)  # sent to the inbox instead
        refused = await tab.evaluate("fetch('/api/v1/reports/csat').then((r) => r.status)")
        assert refused == 403
