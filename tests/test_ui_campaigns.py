"""Campaigns in the browser against the real API, worker and fake provider: a campaign made in
the wizard (audience count, template parameters mapped with the live preview, the estimate)
runs to completion on its progress page, live; a CSV audience with a bad row shows that row's
error and keeps the others; a scheduled campaign is edited in the wizard, filled as stored."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from tests.fixtures.app import Tenant
from tests.fixtures.browser import screenshot, sign_in
from tests.fixtures.campaigns import (
    audience,
    campaign,
    campaign_body,
    create,
    number_with_templates,
    provider_successes,
)
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import create_evolution_instance
from zapflow.db import SessionFactory


async def test_a_campaign_made_in_the_wizard_completes_live(
    page: Page,
    tenant: Tenant,
    worker: None,
    provider_server: ProviderServer,
    sessions: SessionFactory,
) -> None:
    await number_with_templates(tenant, provider_server)
    prefix = await audience(sessions, tenant.id, 4, "ui")
    await sign_in(page, tenant.api_key, "/app/#/campaigns/new")
    wizard = page.locator("form.wizard")
    await wizard.get_by_label("Campaign name").fill("Natal")
    await wizard.get_by_label("Contacts with the tags").fill("ui")
    await expect(wizard.locator(".audience-count")).to_contain_text("4 recipients")
    await wizard.get_by_label("Template").select_option(label="promo (pt_BR) · MARKETING")
    second = wizard.locator('[data-parameter="body.2"]')
    await expect(
        wizard.locator('[data-parameter="body.1"]').get_by_label("Filled from")
    ).to_have_value("name")
    await expect(wizard.locator(".preview-bubble")).to_contain_text("has no custom_fields.")
    await second.get_by_label("Custom field key").fill("cupom")
    await expect(wizard.locator(".preview-bubble")).to_contain_text(
        re.compile(r"Oi Cliente \d, cupom C\d")
    )
    await expect(wizard.locator('.estimate [data-category="marketing"]')).to_have_text("4")
    await screenshot(page, "campaign-wizard")
    await wizard.get_by_role("button", name="Create campaign").click()

    await expect(page).to_have_url(re.compile(r"#/campaigns/[0-9a-f-]{36}$"))
    head = page.locator(".campaign-detail .flow-head")
    await expect(head.locator("[data-status]")).to_have_attribute(
        "data-status", "completed", timeout=30_000
    )
    await expect(page.locator('[data-count="sent"]')).to_have_text("4")
    await expect(page.locator(".progress-chart")).to_have_attribute(
        "aria-label", "4 of 4 recipients done"
    )
    await expect(head.get_by_role("button", name="Pause")).to_have_count(0)
    await expect(page.locator(".campaign-list")).to_contain_text("Natal Completed")
    await expect(page.locator(".campaign-list .list-stats")).to_have_text("4/4 done · 0% delivered")
    await screenshot(page, "campaign-progress")
    assert sorted(provider_successes(provider_server, prefix).values()) == [1, 1, 1, 1]


async def test_a_csv_audience_with_a_bad_row_shows_the_row_error(
    page: Page, tenant: Tenant
) -> None:
    await create_evolution_instance(tenant)
    await sign_in(page, tenant.api_key, "/app/#/campaigns/new")
    wizard = page.locator("form.wizard")
    await expect(wizard).to_contain_text("Evolution numbers have no templates")
    await wizard.get_by_text("Or upload a CSV list").click()
    csv = b"phone_number,name\n+5511955550001,Ana\nnot a phone,Bia\n+5511955550003,Caio\n"
    await wizard.get_by_label("CSV file").set_input_files(
        files=[{"name": "lista.csv", "mimeType": "text/csv", "buffer": csv}]
    )
    await wizard.get_by_role("button", name="Upload list").click()
    errors = wizard.locator(".row-errors")
    await expect(errors).to_contain_text("1 rows were not imported")
    await expect(errors.locator('[data-row="3"]')).to_contain_text("Row 3 · phone_number:")
    await expect(wizard.locator(".upload-report")).to_contain_text("2 contacts created")
    await expect(wizard.get_by_label("Contacts with the tags")).to_have_value(re.compile(r"^csv-"))
    await expect(wizard.locator(".audience-count")).to_contain_text("2 recipients")
    await wizard.get_by_label("Text", exact=True).fill("Oi {{name}}!")
    await expect(wizard.locator(".preview-bubble")).to_contain_text(re.compile(r"Oi (Ana|Caio)!"))


async def test_a_scheduled_campaign_is_edited_in_the_wizard(
    page: Page, tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    instance = await number_with_templates(tenant, provider_server)
    await audience(sessions, tenant.id, 2, "editar")
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    made = await create(tenant, campaign_body(instance, "editar", scheduled_at=later))
    await sign_in(page, tenant.api_key, f"/app/#/campaigns/{made['id']}")
    await page.locator(".campaign-detail .flow-head").get_by_role("button", name="Edit").click()
    wizard = page.locator("form.wizard")
    await expect(wizard.get_by_label("Campaign name")).to_have_value("Campanha editar")
    await expect(wizard.get_by_label("Contacts with the tags")).to_have_value("editar")
    coupon = wizard.locator('[data-parameter="body.2"]').get_by_label("Custom field key")
    await expect(coupon).to_have_value("cupom")  # the stored sources, shown
    await expect(wizard.locator(".audience-count")).to_contain_text("2 recipients")
    await wizard.get_by_label("Campaign name").fill("Natal editado")
    await wizard.get_by_label("Messages per second at most").fill("5")
    await wizard.get_by_role("button", name="Save changes").click()
    head = page.locator(".campaign-detail .flow-head")
    await expect(head.locator("h2")).to_have_text("Natal editado")
    stored = await campaign(tenant, made["id"])
    assert (stored["name"], stored["throughput"], stored["scheduled_at"] is not None) == (
        "Natal editado", 5, True,
    )  # fmt: skip
