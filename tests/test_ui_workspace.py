"""The agent's desk in the browser: a canned response inserted by its shortcut with the
contact's name filled in, its reply buttons (ids kept) making the text an interactive message and
its attachment sent after it, and "assign to me"; an agent managing her own with attachments and
buttons, and the company's files on her account page: used by it, so not deleted; picked in the
editor, then deleted."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page, expect

from tests.fixtures.app import Tenant
from tests.fixtures.browser import screenshot, sign_in_as
from tests.fixtures.traffic import eventually, start_conversation
from tests.test_ui_people import PASSWORD, person

KIT = "https://example.com/kit.pdf"


def _what(message: dict[str, Any]) -> Any:
    """A sent message's media URL or uploaded file's id, else its interactive part."""
    media = message["media"]
    if media:
        return media.get("url") or media["media_id"]
    return message["payload"]["outbound"]["interactive"]


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
            "buttons": [{"id": "buy", "title": "Quero"}, {"id": "later", "title": "Depois"}],
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
    await expect(page.get_by_label("Quick-reply buttons")).to_have_value("Quero | Depois")
    await composer.press("Enter")
    await expect(page.locator(".composer-attachments li")).to_have_count(0)

    async def sent() -> list[tuple[str, Any]]:
        listed = await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages")
        assert listed.status_code == 200, listed.text
        mine = [m for m in listed.json()["data"] if m["sent_by"] == "agent"]
        return [(m["type"], _what(m)) for m in mine]

    # the text first, as reply buttons with the response's ids, then the attachment as a media
    # message (the list is newest first)
    interactive = {
        "type": "button",
        "body": "Oi Maria Souza! O kit sai por R$ 150.",
        "buttons": [{"id": "buy", "title": "Quero"}, {"id": "later", "title": "Depois"}],
    }
    expected = [("document", KIT), ("interactive", interactive)]
    await eventually(sent, lambda found: found == expected, within=10)

    # a file the agent attaches in the composer: uploaded, then sent as a media message naming it
    pdf = {"name": "recibo.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7\n%%EOF\n"}
    await page.get_by_label("Attach a file").set_input_files(files=[pdf])
    await expect(page.locator(".composer-attachments li")).to_contain_text("recibo.pdf")
    await composer.press("Enter")
    found = await eventually(sent, lambda found: len(found) == 3, within=10)
    media_id = found[0][1]
    assert found[0][0] == "document" and media_id != KIT
    got = await tenant.client.get(f"/api/v1/media/{media_id}")
    assert got.status_code == 200 and got.json()["filename"] == "recibo.pdf"


async def test_an_agent_manages_own_canned_responses_with_an_attachment(
    page: Page, tenant: Tenant, api_url: str
) -> None:
    agent = await person(tenant, api_url, "agent", "Caio")
    await sign_in_as(page, agent["email"], PASSWORD, "/app/#/account")
    manager = page.locator(".canned-manager")
    await expect(manager.get_by_label("For the whole company")).to_have_count(0)  # an agent's own
    await manager.get_by_label("Shortcut (typed as /shortcut)").fill("menu")
    await manager.get_by_label("Text").fill("Our menu, {{contact.name}}:")
    await manager.get_by_role("button", name="Add an attachment").click()
    await manager.get_by_label("Media URL").fill("https://example.com/menu.pdf")
    await manager.get_by_label("Kind").select_option("document")
    upload = {"name": "prices.pdf", "mimeType": "text/html", "buffer": b"%PDF-1.7\n%%EOF\n"}
    await manager.get_by_label("Upload a file").set_input_files(files=[upload])
    await expect(manager.locator("[data-media-id]")).to_contain_text("Document: prices.pdf")
    await manager.get_by_role("button", name="Add a reply button").click()
    await manager.get_by_label("Button title").fill("Pedir")
    await manager.get_by_role("button", name="Save").click()
    row = manager.locator('li[data-shortcut="menu"]')
    await expect(row).to_contain_text("Attachments: 2")
    await expect(row).to_contain_text("Buttons: Pedir")
    await screenshot(page, "canned-responses")
    # the company's files: hers, used by the response, so not deleted (the refusal says why)
    files = page.locator(".media-files")
    file_row = files.locator("tr", has_text="prices.pdf")
    await expect(file_row).to_contain_text("Caio")
    await expect(file_row).to_contain_text("/menu")
    await file_row.get_by_role("button", name="Delete").click()
    await expect(files.get_by_role("status")).to_contain_text("in use by canned responses /menu")

    async def own() -> list[tuple[str, str, list[str], list[Any]]]:
        listed = await page.request.get(f"{api_url}/api/v1/canned-responses")  # her cookie
        assert listed.status == 200, await listed.text()
        return [
            (c["shortcut"], c["body"], [a.get("url") or a["mime_type"] for a in c["attachments"]],
             c["buttons"])
            for c in await listed.json()
        ]  # fmt: skip

    order = [{"id": "Pedir", "title": "Pedir"}]  # no id typed: the title
    assert await own() == [
        (
            "menu",
            "Our menu, {{contact.name}}:",
            ["https://example.com/menu.pdf", "application/pdf"],
            order,
        )
    ]

    await row.get_by_role("button", name="Edit").click()
    await manager.get_by_label("Media URL").fill("http://169.254.169.254/x")  # refused, said
    await manager.get_by_role("button", name="Save").click()
    await expect(manager.get_by_role("status")).to_contain_text("attachments.0.url")
    for _ in range(2):
        await manager.get_by_role("button", name="Remove attachment").first.click()
    await manager.get_by_role("button", name="Remove button").click()
    await manager.get_by_role("button", name="Save").click()
    await expect(row).not_to_contain_text("Attachments")
    await expect(row).not_to_contain_text("Buttons")
    assert await own() == [("menu", "Our menu, {{contact.name}}:", [], [])]
    # named by nothing now: picked again in the editor from the company's files, then deleted
    await expect(file_row).to_contain_text("nothing")
    await manager.get_by_label("Pick an uploaded file").select_option(label="Document: prices.pdf")
    await expect(manager.locator("[data-media-id]")).to_contain_text("Document: prices.pdf")
    await file_row.get_by_role("button", name="Delete").click()
    await expect(file_row).to_have_count(0)
