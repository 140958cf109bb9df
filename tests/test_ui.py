"""The agent inbox in a real browser (headless Chromium) against the real API, worker and the
fake provider server: sign-in, live list and thread, replies and ticks, the bot's pause."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from playwright.async_api import Browser, Page, expect
from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.browser import PHONE, open_page, screenshot, sign_in
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_statuses,
    cloud_text,
    create_cloud_instance,
    eventually,
    ok_json,
    post_cloud,
    start_conversation,
)
from zapflow.db import SessionFactory, transaction
from zapflow.services.conversations import persist_inbound
from zapflow.whatsapp.cloud import parse_webhook
from zapflow.whatsapp.types import InboundMessage

FLOW_SAMPLE = Path(__file__).parent.parent / "examples" / "flows" / "lead_qualification.yaml"


async def customer_says(
    tenant: Tenant, instance: dict[str, Any], wa_id: str, text: str, name: str = "Maria"
) -> None:
    message = cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", text, int(time.time()), name=name)
    delivery = cloud_delivery(instance["phone_number_id"], message)
    assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).status_code == 200


async def test_a_wrong_key_is_refused_and_the_key_stays_out_of_urls(page: Page, tenant: Tenant):
    await page.goto("/app/")
    await page.get_by_role("button", name="Use an API key").click()
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


async def message_rows(tenant: Tenant, conversation_id: str) -> list[dict[str, Any]]:
    response = await tenant.client.get(f"/api/v1/conversations/{conversation_id}/messages")
    return list(ok_json(response)["data"])


async def test_a_reply_goes_out_through_the_provider_pausing_the_bot_and_its_ticks_update(
    page: Page, tenant: Tenant, worker: None, provider_server: ProviderServer
):
    wa_id = "5511922220002"
    instance, conversation_id = await start_conversation(tenant, wa_id)
    await sign_in(page, tenant.api_key, f"/app/#/inbox/{conversation_id}")
    head = page.locator(".thread-head")
    await expect(head.locator("[data-bot]")).to_have_attribute("data-bot", "active")

    composer = page.get_by_label("Message", exact=True)
    await composer.fill("Bom dia!")
    await composer.press("Shift+Enter")
    await composer.type("Posso ajudar?")
    assert await composer.input_value() == "Bom dia!\nPosso ajudar?"
    await composer.press("Enter")
    await expect(composer).to_have_value("")

    [request] = await provider_server.wait_for_requests(1)
    assert request.json["text"]["body"] == "Bom dia!\nPosso ajudar?"
    # sending took the conversation over from the bot, visibly
    await expect(head.locator("[data-bot]")).to_have_attribute("data-bot", "paused")
    assert (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()["is_paused"]

    bubble = page.locator(".msg.out", has_text="Posso ajudar?")
    await expect(bubble.locator(".ticks")).to_have_attribute("data-status", "sent")
    rows = await eventually(
        lambda: message_rows(tenant, conversation_id),
        lambda found: bool(found[0]["message_key_id"]),
    )
    key = rows[0]["message_key_id"]
    for status in ("delivered", "read"):
        receipt = cloud_statuses(
            instance["phone_number_id"], (key, status, wa_id, int(time.time()))
        )
        assert (
            await post_cloud(tenant.client, instance["webhook_url"], receipt)
        ).status_code == 200
        await expect(bubble.locator(".ticks")).to_have_attribute("data-status", status)

    await head.get_by_role("button", name="Resume bot").click()
    await expect(head.locator("[data-bot]")).to_have_attribute("data-bot", "active")
    resumed = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
    assert resumed["is_paused"] is False
    await head.get_by_role("button", name="Pause bot").click()
    await expect(head.locator("[data-bot]")).to_have_attribute("data-bot", "paused")


async def test_a_send_the_provider_refuses_shows_its_reason_and_a_retry(
    page: Page, tenant: Tenant, worker: None, provider_server: ProviderServer
):
    _, conversation_id = await start_conversation(tenant, "5511933330003")
    await sign_in(page, tenant.api_key, f"/app/#/inbox/{conversation_id}")
    provider_server.fail_next(1, status=400, to="5511933330003")
    composer = page.get_by_label("Message", exact=True)
    await composer.fill("Segue o orçamento")
    await composer.press("Enter")

    bubble = page.locator(".msg.out", has_text="Segue o orçamento")
    await expect(bubble.locator(".ticks")).to_have_attribute("data-status", "failed")
    await expect(bubble.locator(".failure")).to_contain_text("Not sent:")
    await bubble.get_by_role("button", name="Retry").click()
    await expect(page.locator(".msg.out .ticks[data-status=sent]")).to_have_count(1)
    assert len(provider_server.sent_to("5511933330003")) == 2


async def make_board(tenant: Tenant) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    stages = [{"name": "New", "color": "#64748b"}, {"name": "Proposal", "color": "#f59e0b"},
              {"name": "Closing", "color": "#22c55e"}]  # fmt: skip
    funnel = await tenant.client.post("/api/v1/funnels", json={"name": "Sales", "stages": stages})
    assert funnel.status_code == 201, funnel.text
    deals = []
    for name, title, value in (("Ana", "Kit festa", "1500.00"), ("Bruno", "Buffet", "820.50"),
                               ("Carla", "Decoração", "300.00")):  # fmt: skip
        contact = await tenant.client.post(
            "/api/v1/contacts",
            json={"name": name, "phone_number": f"+55119{uuid.uuid4().int % 10**8:08d}"},
        )
        assert contact.status_code == 201, contact.text
        body = {"title": title, "value": value, "funnel_id": funnel.json()["id"],
                "contact_id": contact.json()["id"]}  # fmt: skip
        deal = await tenant.client.post("/api/v1/deals", json=body)
        assert deal.status_code == 201, deal.text
        deals.append(deal.json())
    return funnel.json(), deals


async def test_a_deal_moves_between_stages_on_the_board(page: Page, tenant: Tenant):
    funnel, deals = await make_board(tenant)
    new, proposal, closing = (stage["id"] for stage in funnel["stages"])
    await sign_in(page, tenant.api_key, "/app/#/board")
    column = {stage: page.locator(f'.column[data-stage="{stage}"]') for stage in (new, proposal)}
    await expect(column[new].locator(".count")).to_have_text("3")
    await expect(column[new].locator(".total")).to_contain_text("2,620.50")

    card = column[new].locator(".deal-card", has_text="Kit festa")
    await card.drag_to(column[proposal].locator(".cards"))
    await expect(column[proposal].locator(".deal-card", has_text="Kit festa")).to_be_visible()
    await expect(column[proposal].locator(".total")).to_contain_text("1,500.00")
    await expect(column[new].locator(".count")).to_have_text("2")
    moved = (await tenant.client.get(f"/api/v1/deals/{deals[0]['id']}")).json()
    assert moved["stage_id"] == proposal

    # without a mouse: each card's stage menu
    await column[new].get_by_label("Move Buffet to").select_option(label="Closing")
    await expect(page.locator(f'.column[data-stage="{closing}"] .deal-card strong')).to_have_text(
        ["Buffet"]
    )
    await screenshot(page, "board")
    await screenshot(page, "board", PHONE)


async def test_the_live_stream_reconnects_by_itself_and_catches_up(
    page: Page, tenant: Tenant, worker: None
):
    instance, conversation_id = await start_conversation(tenant, "5511944440004")
    await sign_in(page, tenant.api_key, f"/app/#/inbox/{conversation_id}")
    status = page.locator(".live-status")
    await customer_says(tenant, instance, "5511944440004", "primeira")
    await expect(page.locator(".messages")).to_contain_text("primeira")

    await page.context.set_offline(True)
    await expect(status).to_have_attribute("data-state", "reconnecting")
    await expect(status).to_have_text("Reconnecting…")
    await customer_says(tenant, instance, "5511944440004", "enquanto offline")
    await page.context.set_offline(False)
    await expect(status).to_have_attribute("data-state", "live")
    # replayed from Last-Event-ID: in the thread and the list, with no reload
    await expect(page.locator(".messages")).to_contain_text("enquanto offline")
    await expect(page.locator("a.conv")).to_contain_text("enquanto offline")


HISTORY = 10_000
INSERT_HISTORY = """
INSERT INTO messages (id, company_id, conversation_id, instance_id, message_key_id, direction,
                      from_me, type, body, payload, provider_timestamp, status, sent_by, created_at)
SELECT gen_random_uuid(), c.company_id, c.id, c.instance_id, 'hist.' || i, 'inbound', false,
       'text', 'message ' || lpad(i::text, 5, '0'), '{}'::jsonb, t, 'received', 'customer', t
FROM conversations c, generate_series(1, :n) AS i,
     LATERAL (SELECT now() - interval '1 day' + i * interval '1 second' AS t) AS ts
WHERE c.id = :conversation_id
"""
# Scrolls the thread to its first message (paging up), then from top to bottom a frame at a time;
# returns the most rows ever in the DOM and the frame times seen while scrolling.
SCROLL_THROUGH = """async (first) => {
  const s = document.querySelector('.messages');
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  let most = 0;
  const started = performance.now();
  while (!s.textContent.includes(first) && performance.now() - started < 60000) {
    s.scrollTop = 0;
    most = Math.max(most, s.querySelectorAll('.vlist-row').length);
    await pause(20);
  }
  const pagedUp = performance.now() - started;
  const frames = [];
  let last = await frame().then(() => performance.now());
  while (s.scrollTop + s.clientHeight < s.scrollHeight - 1) {
    s.scrollTop += 1500;
    await frame();
    const now = performance.now();
    frames.push(now - last);
    last = now;
    most = Math.max(most, s.querySelectorAll('.vlist-row').length);
  }
  frames.sort((a, b) => a - b);
  const pct = (p) => frames[Math.min(frames.length - 1, Math.floor(p * frames.length))];
  return { most, pagedUp, frames: frames.length, p50: pct(0.5), p95: pct(0.95), max: pct(1) };
}"""


async def test_a_thread_of_ten_thousand_messages_renders_only_what_is_visible(
    page: Page, tenant: Tenant, worker: None, sessions: SessionFactory
):
    _, conversation_id = await start_conversation(tenant, "5511955550005")
    async with transaction(sessions) as session:
        await session.execute(
            text(INSERT_HISTORY), {"n": HISTORY, "conversation_id": conversation_id}
        )
    await sign_in(page, tenant.api_key, f"/app/#/inbox/{conversation_id}")
    await expect(page.locator(".messages")).to_contain_text("message 10000")

    seen = await page.evaluate(SCROLL_THROUGH, "message 00001")
    assert seen["pagedUp"] < 60000, "the first message never appeared while paging up"
    assert seen["most"] < 100, seen
    await expect(page.locator(".messages")).to_contain_text("oi")  # the newest, at the bottom
    print(f"\n10,000-message thread: {seen}")


# What the first visit downloads (compressed bytes of JS and CSS) and when the list was painted.
LOAD_FIGURES = """() => {
  const assets = performance.getEntriesByType('resource')
    .filter((e) => /\\.(js|css)$/.test(e.name));
  const [painted] = performance.getEntriesByName('zapflow:list-painted');
  const [page] = performance.getEntriesByType('navigation');
  return {
    documentMs: page.responseEnd,
    files: assets.length,
    compressed: assets.reduce((sum, e) => sum + e.encodedBodySize, 0),
    uncompressed: assets.reduce((sum, e) => sum + e.decodedBodySize, 0),
    listPaintedMs: painted.startTime,
    afterDocumentMs: painted.startTime - page.responseEnd,
  };
}"""


async def seed_messages(
    sessions: SessionFactory, tenant: Tenant, instance: dict[str, Any], *changes: dict[str, Any]
) -> None:
    """Cloud deliveries normalized and stored straight by the persisting service (no worker)."""
    delivery = cloud_delivery(instance["phone_number_id"], *changes)
    async with transaction(sessions) as session:
        for message in parse_webhook(delivery):
            assert isinstance(message, InboundMessage)
            await persist_inbound(
                session, uuid.UUID(tenant.id), uuid.UUID(instance["id"]), message.remote_jid,
                [message],
            )  # fmt: skip


def said(wa_id: str, text: str, name: str) -> dict[str, Any]:
    return cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", text, int(time.time()), name=name)


async def test_inbox_first_load_in_english_and_portuguese_on_desktop_and_phone(
    browser: Browser, api_url: str, tenant: Tenant, sessions: SessionFactory
):
    instance = await create_cloud_instance(tenant)
    for n, (name, words) in enumerate((("Ana Souza", "Oi! Qual o preço do kit?"),
                                      ("Bruno Lima", "Vocês entregam em Campinas?"),
                                      ("Carla Dias", "Obrigada, chegou certinho 😊"))):  # fmt: skip
        await seed_messages(sessions, tenant, instance, said(f"55119666600{n:02d}", words, name))
    for path in ("/app/", "/api/v1/conversations"):  # a warm server; the browser starts cold
        assert (await tenant.client.get(path)).status_code == 200
    # signed in already (as after the sign-in form): the first visit starts from a cold cache
    async with open_page(browser, api_url, locale="pt-BR") as page:
        await page.context.add_init_script(
            f"sessionStorage.setItem('zapflow.apiKey', '{tenant.api_key}')"
        )
        await page.goto("/app/")
        await expect(page.locator("a.conv")).to_have_count(3)
        await expect(page.get_by_role("link", name="Conversas")).to_be_visible()  # pt-BR browser
        await page.wait_for_function("performance.getEntriesByName('zapflow:list-painted').length")
        figures = await page.evaluate(LOAD_FIGURES)
        print(f"\nfirst load: {figures}")
        assert figures["compressed"] < 150_000, figures

        await page.get_by_label("Idioma").select_option("en")
        await expect(page.get_by_role("link", name="Inbox")).to_be_visible()
        await expect(page.locator("a.conv")).to_have_count(3)
        await screenshot(page, "inbox")
        await screenshot(page, "inbox", PHONE)
        await page.locator("a.conv", has_text="Ana Souza").click()
        await expect(page.locator(".messages")).to_contain_text("Qual o preço")
        await expect(page.locator(".list-pane")).to_be_hidden()  # one pane at a time on a phone
        await page.get_by_role("link", name="Contact").click()
        await expect(page.get_by_role("heading", name="Tags")).to_be_visible()
        await page.get_by_label("New tag").fill("vip")
        await page.get_by_role("button", name="Add", exact=True).click()
        await expect(page.get_by_role("button", name="Remove tag vip")).to_be_visible()
        await screenshot(page, "contact", PHONE)


async def test_a_follow_up_is_scheduled_in_two_days_or_at_a_picked_time_and_cancelled(
    browser: Browser, api_url: str, tenant: Tenant, worker: None
):
    _, conversation_id = await start_conversation(tenant, "5511977770007")

    async def pending() -> list[dict[str, Any]]:
        path = f"/api/v1/followups?conversation_id={conversation_id}&status=PENDING"
        return list((await tenant.client.get(path)).json()["data"])

    async with open_page(browser, api_url, timezone_id="America/Sao_Paulo") as page:
        await sign_in(page, tenant.api_key, f"/app/#/inbox/{conversation_id}")
        panel = page.locator("section", has=page.get_by_role("heading", name="Follow-ups"))
        await panel.get_by_label("Follow-up message").fill("Conseguiu ver a proposta?")
        await panel.get_by_role("button", name="Schedule follow-up").click()
        await expect(panel.locator("li[data-status=PENDING]")).to_contain_text("Conseguiu ver")
        [in_two_days] = await pending()
        due = datetime.fromisoformat(in_two_days["scheduled_for"]) - datetime.now(UTC)
        assert timedelta(days=2) - timedelta(minutes=5) < due <= timedelta(days=2)

        await panel.get_by_label("Follow-up message").fill("Bom dia! Posso ajudar?")
        await panel.get_by_label("At a date and time").check()
        await panel.get_by_label("Date and time", exact=True).fill("2030-01-15T09:00")
        await panel.get_by_role("button", name="Schedule follow-up").click()
        await expect(panel.locator("li[data-status=PENDING]")).to_have_count(2)
        at_nine = next(f for f in await pending() if f["message_text"].startswith("Bom dia"))
        # 09:00 in the agent's zone (São Paulo, UTC-3)
        assert datetime.fromisoformat(at_nine["scheduled_for"]) == datetime(
            2030, 1, 15, 12, tzinfo=UTC
        )
        await screenshot(page, "followups")

        row = panel.locator("li", has_text="Conseguiu ver")
        await row.get_by_role("button", name="Cancel follow-up").click()
        await expect(row).to_have_attribute("data-status", "CANCELLED")
        assert [f["id"] for f in await pending()] == [at_nine["id"]]


async def test_a_flow_is_drawn_published_and_simulated(page: Page, tenant: Tenant):
    document = yaml.safe_load(FLOW_SAMPLE.read_text())
    created = await tenant.client.post("/api/v1/flows", json=document)
    assert created.status_code == 201, created.text
    flow = created.json()
    mermaid_loads: list[str] = []
    page.on("request", lambda r: "mermaid" in r.url and mermaid_loads.append(r.url))
    await sign_in(page, tenant.api_key)
    assert mermaid_loads == []  # only the flows view loads it

    await page.get_by_role("link", name="Flows").click()
    await page.get_by_role("link", name=flow["name"]).click()
    diagram = page.locator(".diagram svg")
    await expect(diagram).to_be_visible()
    await expect(diagram).to_contain_text("ask_name")
    assert len(mermaid_loads) == 1

    await page.get_by_role("button", name="Publish draft").click()
    await expect(page.get_by_text("Published version 1.")).to_be_visible()
    assert (await tenant.client.get(f"/api/v1/flows/{flow['id']}")).json()["current_version"] == 1
    await expect(diagram).to_be_visible()
    await screenshot(page, "flow")
    await screenshot(page, "flow", PHONE)

    await page.get_by_label("Customer replies").fill("Maria\nlots\n12000")
    await page.get_by_role("button", name="Run simulation").click()
    await expect(page.locator("[data-status=completed]")).to_be_visible()
    await expect(page.locator(".transcript-steps")).to_contain_text("Thanks, Maria!")


async def test_search_finds_a_message_and_opens_its_conversation(
    page: Page, tenant: Tenant, worker: None
):
    instance, conversation_id = await start_conversation(tenant, "5511988880008")
    await customer_says(tenant, instance, "5511988880008", "Qual o preço do kit festa infantil?")
    await eventually(lambda: message_rows(tenant, conversation_id), lambda found: len(found) == 2)
    await sign_in(page, tenant.api_key, "/app/#/search")
    await page.get_by_label("Words or meaning").fill("kit festa")
    await page.get_by_label("How").select_option("keyword")
    await page.get_by_role("button", name="Search", exact=True).click()
    hit = page.locator(".hit")
    await expect(hit).to_have_count(1)
    await expect(hit.locator("mark").first).to_have_text("kit")
    await hit.click()
    await expect(page.locator(".messages")).to_contain_text("kit festa infantil")


AI_REPLY = """
INSERT INTO messages (id, company_id, conversation_id, instance_id, message_key_id, direction,
                      from_me, type, body, payload, provider_timestamp, status, sent_by, created_at)
SELECT gen_random_uuid(), company_id, id, instance_id, 'wamid.ai', 'outbound', true, 'text',
       'Temos sim! O kit sai por R$ 150.', '{}'::jsonb, now(), 'delivered', 'ai', now()
FROM conversations WHERE company_id = :company_id
"""


async def test_every_kind_of_message_is_shown_with_its_details(
    page: Page, tenant: Tenant, sessions: SessionFactory
):
    instance = await create_cloud_instance(tenant)
    wa_id, ts = "5511912340009", str(int(time.time()))
    first = said(wa_id, "Vocês têm o kit festa?", "Dora")
    key = first["messages"][0]["id"]

    def sent(kind: str, **content: Any) -> dict[str, Any]:
        message = {"from": wa_id, "id": f"wamid.{uuid.uuid4().hex}", "timestamp": ts, "type": kind}
        return {"messages": [{**message, **content}]}

    await seed_messages(
        sessions, tenant, instance, first,
        sent("image", image={"id": "m1", "link": "https://cdn.example.com/kit.jpg",
                             "caption": "Esse aqui"}),
        sent("location", location={"latitude": -23.55, "longitude": -46.63, "name": "Loja Centro",
                                   "url": "javascript:alert(document.domain)"}),
        sent("document", document={"id": "m2", "link": "javascript:alert(document.domain)",
                                   "filename": "boleto.pdf"}),
        sent("reaction", reaction={"message_id": key, "emoji": "❤"}),
        sent("text", text={"body": "É para sábado"}, context={"id": key}),
    )  # fmt: skip
    async with transaction(sessions) as session:
        await session.execute(text(AI_REPLY), {"company_id": tenant.id})
    conversation = (await tenant.client.get("/api/v1/conversations")).json()["data"][0]
    await sign_in(page, tenant.api_key, f"/app/#/inbox/{conversation['id']}")

    thread = page.locator(".messages")
    image = thread.locator(".msg[data-type=image]")
    await expect(image).to_contain_text("Image")
    await expect(image).to_contain_text("Esse aqui")
    await expect(image.get_by_role("link")).to_have_attribute(
        "href", "https://cdn.example.com/kit.jpg"
    )
    location = thread.locator(".msg[data-type=location]")
    await expect(location).to_contain_text("Loja Centro")
    # provider-supplied URLs become links only when they are http(s)
    await expect(location.get_by_role("link")).to_have_attribute(
        "href", "https://www.openstreetmap.org/?mlat=-23.55&mlon=-46.63"
    )
    document = thread.locator(".msg[data-type=document]")
    await expect(document).to_contain_text("boleto.pdf")
    await expect(document.get_by_role("link")).to_have_count(0)
    reaction = thread.locator(".msg[data-type=reaction]")
    await expect(reaction).to_contain_text("❤")
    await expect(reaction).to_contain_text("Vocês têm o kit festa?")
    quote = thread.locator(".msg", has_text="É para sábado").locator(".quote")
    await expect(quote).to_have_text("Vocês têm o kit festa?")
    ai = thread.locator(".msg.out", has_text="O kit sai por")
    await expect(ai.locator("[data-sender=ai]")).to_have_text("AI")
    await expect(ai.locator(".ticks")).to_have_attribute("data-status", "delivered")
    await screenshot(page, "thread")
    await screenshot(page, "thread", PHONE)
