"""The agent inbox in a real browser (headless Chromium) against the real API, worker and the
fake provider server: sign-in, live list and thread, replies and ticks, the bot's pause."""

from __future__ import annotations

import time
import uuid
from typing import Any

from playwright.async_api import Page, expect

from tests.fixtures.app import Tenant
from tests.fixtures.browser import PHONE, screenshot, sign_in
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_statuses,
    cloud_text,
    create_cloud_instance,
    eventually,
    post_cloud,
    start_conversation,
)


async def customer_says(
    tenant: Tenant, instance: dict[str, Any], wa_id: str, text: str, name: str = "Maria"
) -> None:
    message = cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", text, int(time.time()), name=name)
    delivery = cloud_delivery(instance["phone_number_id"], message)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200


async def test_a_wrong_key_is_refused_and_the_key_stays_out_of_urls(page: Page, tenant: Tenant):
    await page.goto("/app/")
    await page.get_by_label("API key").fill("zf_not_a_key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not valid")

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await sign_in(page, tenant.api_key)
    assert requests and not any(tenant.api_key in url for url in requests)


async def test_a_webhook_shows_up_in_the_list_and_the_open_thread_live(
    page: Page, tenant: Tenant, worker: None
):
    instance = await create_cloud_instance(tenant)
    await sign_in(page, tenant.api_key)
    await expect(page.get_by_text("No conversations.")).to_be_visible()

    await customer_says(tenant, instance, "5511911110001", "Oi! Qual o preço?", name="Ana Souza")
    row = page.locator("a.conv", has_text="Ana Souza")
    await expect(row).to_contain_text("Oi! Qual o preço?")
    await expect(row.locator(".unread-count")).to_have_text("1")

    await row.click()
    thread = page.locator(".messages")
    await expect(thread).to_contain_text("Oi! Qual o preço?")
    await expect(row.locator(".unread-count")).to_have_count(0)

    await customer_says(tenant, instance, "5511911110001", "Vocês entregam hoje?", name="Ana Souza")
    await expect(thread).to_contain_text("Vocês entregam hoje?")
    await expect(row).to_contain_text("Vocês entregam hoje?")
    await screenshot(page, "thread")
