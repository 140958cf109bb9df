"""The agent inbox in a real browser: merging a duplicate contact from the contact panel (the
side-by-side preview, a conflict settled for the other contact's value, the confirm), the
merged conversation leaving the list live (``conversation.merged`` on the stream), and
quick-reply buttons sent from the composer."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.async_api import Page, expect

from tests.fixtures.app import Tenant
from tests.fixtures.browser import screenshot, sign_in
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import eventually, post_cloud, start_conversation
from tests.whatsapp.payloads import load


async def bsuid_customer(tenant: Tenant, instance: dict[str, Any], name: str) -> str:
    """A customer known by BSUID only, named ``name``; their contact's id."""
    body = load("cloud_bsuid")
    value = body["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = instance["phone_number_id"]
    value["contacts"][0]["profile"]["name"] = name
    value["messages"][0]["id"] = f"wamid.{uuid.uuid4().hex}"
    assert (await post_cloud(tenant.client, instance["webhook_url"], body)).status_code == 200

    async def contacts() -> list[dict[str, Any]]:
        page = (await tenant.client.get("/api/v1/contacts", params={"q": name})).json()
        return [c for c in page["data"] if c["phone_number"] is None]

    [contact] = await eventually(contacts, lambda found: len(found) == 1)
    return str(contact["id"])


async def test_a_duplicate_is_previewed_side_by_side_and_merged(
    page: Page, tenant: Tenant, worker: None
) -> None:
    instance, conversation_id = await start_conversation(tenant, "5511933330003")
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    survivor = conversation["contact_id"]
    other = await bsuid_customer(tenant, instance, "Maria")
    for contact_id, email in ((survivor, "maria@old.com"), (other, "maria@new.com")):
        patched = await tenant.client.patch(f"/api/v1/contacts/{contact_id}", json={"email": email})
        assert patched.status_code == 200

    await sign_in(page, tenant.api_key, f"/app/#/inbox/{conversation_id}/contact")
    panel = page.locator("section", has=page.get_by_role("heading", name="Merge a duplicate"))
    await panel.get_by_role("button", name=f"Preview merge with {other[:8]}").click()
    table = panel.locator("table.merge-preview")
    await expect(table.locator("tr[data-field=email]")).to_contain_text("maria@old.com")
    await expect(table.locator("tr[data-field=email]")).to_contain_text("maria@new.com")
    await expect(panel.locator(".merge-moves")).to_contain_text("conversations: 1")
    await screenshot(page, "merge-preview")
    await panel.get_by_label("use this email").check()
    await panel.get_by_role("button", name="Merge", exact=True).click()
    await expect(panel.get_by_role("status")).to_have_text("Merged.")

    assert (await tenant.client.get(f"/api/v1/contacts/{other}")).status_code == 404
    kept = (await tenant.client.get(f"/api/v1/contacts/{survivor}")).json()
    assert (kept["email"], kept["phone_number"]) == ("maria@new.com", "+5511933330003")


async def test_a_merged_conversation_leaves_the_inbox_live(
    page: Page, tenant: Tenant, worker: None
) -> None:
    """Someone else merges the two contacts (the API, not this page): the stream's
    ``conversation.merged`` drops the merged chat's row, and the page reading it follows to the
    survivor's."""
    instance, kept_id = await start_conversation(tenant, "5511955550005")
    survivor = (await tenant.client.get(f"/api/v1/conversations/{kept_id}")).json()["contact_id"]
    other = await bsuid_customer(tenant, instance, "Maria")
    listed = (await tenant.client.get("/api/v1/conversations")).json()["data"]
    [merged_id] = [c["id"] for c in listed if c["contact_id"] == other]

    await sign_in(page, tenant.api_key, f"/app/#/inbox/{merged_id}")
    rows = page.locator("a.conv")
    await expect(rows).to_have_count(2)
    await expect(page.locator(f'a.conv.current[data-id="{merged_id}"]')).to_have_count(1)
    path = f"/api/v1/contacts/{survivor}/merge"
    response = await tenant.client.post(path, json={"contact_id": other})
    assert response.status_code == 200, response.text
    assert response.json()["moved"]["conversations_merged"] == 1

    await expect(page.locator(f'a.conv[data-id="{merged_id}"]')).to_have_count(0)
    await expect(rows).to_have_count(1)
    await expect(page).to_have_url(re.compile(f"#/inbox/{kept_id}$"))
    await expect(page.locator(f'a.conv.current[data-id="{kept_id}"]')).to_have_count(1)


async def test_quick_reply_buttons_go_out_from_the_composer(
    page: Page, tenant: Tenant, worker: None, provider_server: ProviderServer
) -> None:
    _, conversation_id = await start_conversation(tenant, "5511944440004")
    await sign_in(page, tenant.api_key, f"/app/#/inbox/{conversation_id}")
    await page.get_by_label("Quick-reply buttons").fill("Sim | Não")
    composer = page.get_by_label("Message", exact=True)
    await composer.fill("Confirmamos amanhã às 10h?")
    await composer.press("Enter")

    [request] = await provider_server.wait_for_requests(1)
    assert request.json["type"] == "interactive"
    buttons = request.json["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Sim", "Não"]
    bubble = page.locator(".msg.out", has_text="Confirmamos amanhã")
    await expect(bubble.locator(".chip")).to_have_text(["Sim", "Não"])
