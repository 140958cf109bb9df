"""The agent's desk in the browser: a canned response inserted by its shortcut with the
contact's name filled in and its attachment sent after the text, and "assign to me"."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.fixtures.app import Tenant
from tests.fixtures.browser import sign_in_as
from tests.fixtures.traffic import eventually, start_conversation
from tests.test_ui_people import PASSWORD, person

KIT = "https://example.com/kit.pdf"


async def test_a_canned_response_is_inserted_by_its_shortcut_and_assign_to_me(
    page: Page, tenant: Tenant, api_url: str, worker: None
) -> None:
    _, conversation_id = await start_conversation(tenant, "5511966660011")
    conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    renamed = await tenant.client.patch(
        f"/api/v1/contacts/{conversation['contact_id']}", json={"name": "Maria Souza"}
    )
    assert renamed.status_code == 200, renamed.text
    saved = await tenant.client.post(
        "/api/v1/canned-responses",
        json={
            "shortcut": "price",
            "body": "Oi {{contact.name}}! O kit sai por R$ 150.",
            "company_wide": True,
            "attachments": [{"url": KIT, "kind": "document", "filename": "kit.pdf"}],
        },
    )
    assert saved.status_code == 201, saved.text
    agent = await person(tenant, api_url, "agent", "Beto")
    await sign_in_as(page, agent["email"], PASSWORD, f"/app/#/inbox/{conversation_id}")

    head = page.locator(".thread-head")
    await expect(head.locator(".assignee")).to_have_text("Unassigned")
    await head.get_by_role("button", name="Assign to me").click()
    await expect(head.locator(".assignee")).to_have_text("Assigned to Beto")
    assigned = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    assert assigned["assigned_user_id"] == agent["id"]

    composer = page.get_by_label("Message", exact=True)
    await composer.type("/pri")
    await expect(page.locator(".canned-suggestions")).to_contain_text("/price")
    await composer.press("Tab")
    await expect(composer).to_have_value("Oi Maria Souza! O kit sai por R$ 150.")
    await expect(page.locator(".composer-attachments li")).to_contain_text("kit.pdf")
    await composer.press("Enter")
    await expect(page.locator(".composer-attachments li")).to_have_count(0)

    async def sent() -> list[tuple[str, str | None]]:
        listed = await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages")
        assert listed.status_code == 200, listed.text
        mine = [m for m in listed.json()["data"] if m["sent_by"] == "agent"]
        return [(m["type"], (m["media"] or {}).get("url") or m["body"]) for m in mine]

    # the text first, then the attachment as a media message (the list is newest first)
    expected = [("document", KIT), ("text", "Oi Maria Souza! O kit sai por R$ 150.")]
    await eventually(sent, lambda found: found == expected, within=10)
