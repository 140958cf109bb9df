"""The visual flow editor in a real browser (headless Chromium) against the real API: a flow built
by drag and drop only, saved, published and simulated with its path lit; issues on their node and
field, drafts with issues saved and never published; undo/redo; a hand-written flow laid out;
the text view's round trip; versions compared; runs per node and in flight per version; a
send_template's pick of the synced templates; an ask's choices beside the buttons' ids; a 200-node
flow panned (frame times reported, as the inbox's virtual list's are) and the editor's download
size."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import Browser, Page, expect
from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.browser import DESKTOP, PHONE, open_page, screenshot, sign_in
from tests.fixtures.traffic import cloud_delivery, cloud_text, create_cloud_instance
from zapflow.db import SessionFactory, transaction
from zapflow.flows.language import FlowDefinition
from zapflow.models import Template, TemplateStatus
from zapflow.services.conversations import persist_inbound
from zapflow.whatsapp.cloud import parse_webhook
from zapflow.whatsapp.types import InboundMessage

SAMPLE = Path(__file__).parent.parent / "examples" / "flows" / "lead_qualification.yaml"
WIDE = {"width": 1600, "height": 1000}
EXIT_FIELDS = ("next", "on_failure", "on_timeout", "on_invalid", "default", "target")


def sample() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    return loaded


def semantics(document: dict[str, Any]) -> dict[str, Any]:
    """What the engine reads: the API's normalized document, defaults filled, layout aside."""
    return FlowDefinition.model_validate(document).model_dump(mode="json", exclude={"layout"})


@pytest.fixture
async def wide(browser: Browser, api_url: str) -> AsyncIterator[Page]:
    async with open_page(browser, api_url, viewport=WIDE) as tab:
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        yield tab
        assert errors == [], errors  # no uncaught exception in the editor


async def create(tenant: Tenant, document: dict[str, Any]) -> dict[str, Any]:
    response = await tenant.client.post("/api/v1/flows", json=document)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def center(locator: Any) -> tuple[float, float]:
    """The middle of what ``locator`` finds; the canvas redraws its nodes when the API's issues
    arrive, so an element can be replaced while it is measured: measured again then."""
    for _ in range(20):
        box = await locator.bounding_box()
        if box is not None:
            return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        await asyncio.sleep(0.05)
    raise AssertionError(f"{locator} is not on the page")


async def drag(page: Page, source: Any, x: float, y: float) -> None:
    """Press on ``source``, move in steps and release at page point (x, y)."""
    await page.mouse.move(*await center(source))
    await page.mouse.down()
    await page.mouse.move(x, y, steps=6)
    await page.mouse.up()


async def drag_to(page: Page, source: Any, target: Any) -> None:
    await drag(page, source, *await center(target))


async def fill_field(page: Page, name: str, value: Any) -> None:
    panel = page.locator(".editor-side")
    field = panel.locator(f'.field[data-field="{name}"]')
    control = field.locator("input, textarea, select").first
    if await control.evaluate("(el) => el.tagName") == "SELECT":
        await control.select_option(str(value))
    elif isinstance(value, list):
        await control.fill("\n".join(value))
    elif isinstance(value, dict):
        await control.fill("\n".join(f"{k}: {v}" for k, v in value.items()))
    else:
        await control.fill(str(value))


async def test_the_lead_flow_is_built_by_drag_and_drop_saved_published_and_simulated(
    wide: Page, tenant: Tenant
):
    page, example = wide, sample()
    await sign_in(page, tenant.api_key, "/app/#/flows/new/empty")
    canvas = page.locator(".flow-canvas")
    await expect(canvas).to_be_visible()
    side = page.locator(".editor-side")
    await side.get_by_label("Flow name").fill(example["name"])
    await side.get_by_label("Description").fill(example["description"])
    await side.get_by_label("Variables (JSON").fill(json.dumps(example["variables"]))
    await side.get_by_label("Triggers (JSON").fill(json.dumps(example["triggers"]))

    box = await canvas.bounding_box()
    assert box is not None
    for i, node in enumerate(example["nodes"]):
        column, row = divmod(i, 3)
        x, y = box["x"] + 120 + column * 220, box["y"] + 60 + row * 130
        item = page.locator(f'.palette-item[data-type="{node["type"]}"]')
        await item.scroll_into_view_if_needed()
        await drag(page, item, x, y)
        await expect(page.locator(".fnode")).to_have_count(i + 1)
        id_input = side.locator('.field[data-field="id"] input')
        await id_input.fill(node["id"])
        await id_input.press("Tab")
        await expect(page.locator(f'.fnode.selected[data-id="{node["id"]}"]')).to_have_count(1)
        for name, value in node.items():
            if name in ("id", "type", "branches", *EXIT_FIELDS):
                continue
            await fill_field(page, name, value)
        for i, branch in enumerate(node.get("branches", [])):
            await side.get_by_role("button", name="Add branch").click()
            await side.get_by_label(f"Branch {i + 1} expression").fill(branch["when"])

    def port(node_id: str, field: str) -> Any:
        return page.locator(f'.fnode[data-id="{node_id}"] .port[data-port="{field}"]')

    for node in example["nodes"]:
        outputs = [(f, node[f]) for f in EXIT_FIELDS if f in node]
        outputs += [
            (f"branches.{i}.next", b["next"]) for i, b in enumerate(node.get("branches", []))
        ]
        for field, target in outputs:
            await drag_to(
                page, port(node["id"], field), page.locator(f'.fnode[data-id="{target}"]')
            )
    await expect(page.locator(".edge:not(.pending)")).to_have_count(23)  # 22 exits and the start

    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator(".editor-status")).to_have_text("Saved.")
    [flow] = (await tenant.client.get("/api/v1/flows")).json()["data"]
    assert semantics(flow["draft_definition"]) == semantics(example)
    assert set(flow["draft_definition"]["layout"]) == {n["id"] for n in example["nodes"]}

    await page.get_by_label("Version note").fill("First version, built in the editor")
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator(".editor-status")).to_have_text("Published version 1.")
    [version] = (await tenant.client.get(f"/api/v1/flows/{flow['id']}/versions")).json()["data"]
    assert version["note"] == "First version, built in the editor"
    await page.get_by_role("tab", name="Versions").click()
    await expect(page.locator(".version-note")).to_have_text("First version, built in the editor")
    await page.get_by_role("tab", name="Simulate").click()
    await page.get_by_label("Customer replies").fill("Maria\n12000")
    await page.get_by_role("button", name="Run simulation").click()
    await expect(page.locator(".sim-outcome[data-status=completed]")).to_be_visible()
    await expect(page.locator(".transcript-steps")).to_contain_text("Thanks, Maria!")
    lit = page.locator(".fnode.on-path")
    await expect(lit.and_(page.locator('[data-id="deal_qualified"]'))).to_have_count(1)
    await expect(lit.and_(page.locator('[data-id="deal_nurture"]'))).to_have_count(0)
    await expect(
        page.locator('.edge.on-path[data-edge="check_budget->branches.0.next"]')
    ).to_have_count(1)
    await expect(page.locator(".step-variables").last).to_contain_text("budget = 12000")
    await page.set_viewport_size(DESKTOP)
    await page.get_by_role("button", name="Fit").click()
    await screenshot(page, "flow-editor")


async def test_issues_show_on_their_node_and_field_drafts_save_and_publish_is_refused(
    wide: Page, tenant: Tenant
):
    page = wide
    flow = await create(tenant, sample())
    await sign_in(page, tenant.api_key, f"/app/#/flows/{flow['id']}/edit")
    thanks = page.locator('.fnode[data-id="thanks"]')
    await expect(thanks).to_be_visible()
    # an invalid connection: thanks back onto itself, a loop with no wait
    await drag_to(page, thanks.locator('.port[data-port="next"]'), thanks.locator(".body"))
    await expect(thanks).to_have_class("fnode has-issue")
    await thanks.locator(".body").click()
    side = page.locator(".editor-side")
    await expect(side.locator('.field[data-field="next"] .field-issue')).to_contain_text(
        "no wait or ask"
    )
    # a missing field: the greeting's text, cleared
    greeting = page.locator('.fnode[data-id="greeting"]')
    await greeting.locator(".body").click()
    await side.locator('.field[data-field="text"] textarea').fill("")
    await expect(side.locator('.field[data-field="text"] .field-issue')).to_contain_text("required")
    await expect(greeting.locator(".issue-badge")).to_be_visible()

    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator(".editor-status")).to_contain_text("Saved as a draft with")
    stored = (await tenant.client.get(f"/api/v1/flows/{flow['id']}")).json()
    assert "text" not in stored["draft_definition"]["nodes"][0]
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator(".editor-status")).to_contain_text("Publish refused")
    assert (await tenant.client.get(f"/api/v1/flows/{flow['id']}")).json()[
        "current_version"
    ] is None

    # undo twice: the text is back, the loop is gone; redo twice: both again
    canvas = page.locator(".flow-canvas")
    await canvas.focus()
    await page.keyboard.press("Control+z")
    await page.keyboard.press("Control+z")
    await expect(page.locator(".fnode.has-issue")).to_have_count(0)
    await greeting.locator(".body").click()
    await expect(side.locator('.field[data-field="text"] textarea')).to_have_value(
        sample()["nodes"][0]["text"]
    )
    await canvas.focus()
    await page.keyboard.press("Control+Shift+z")
    await expect(thanks).to_have_class("fnode has-issue")
    await expect(greeting).to_have_class("fnode selected")
    await page.keyboard.press("Control+y")
    await expect(greeting).to_have_class("fnode selected has-issue")
    await page.get_by_role("button", name="Undo").click()
    await page.get_by_role("button", name="Undo").click()
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator(".editor-status")).to_have_text("Published version 1.")


async def seed_runs(
    sessions: SessionFactory, tenant: Tenant, flow_id: str, runs: list[tuple[str, str]]
) -> None:
    """``flow_runs`` rows of version 2 at (node, status), in one seeded conversation."""
    instance = await create_cloud_instance(tenant)
    said = cloud_text("5511900001111", f"wamid.{uuid.uuid4().hex}", "oi", int(time.time()))
    async with transaction(sessions) as session:
        [message] = parse_webhook(cloud_delivery(instance["phone_number_id"], said))
        assert isinstance(message, InboundMessage)
        stored = await persist_inbound(
            session, uuid.UUID(tenant.id), uuid.UUID(instance["id"]), message.remote_jid, [message]
        )
        for node, status in runs:
            await session.execute(
                text(
                    "INSERT INTO flow_runs (id, company_id, flow_id, flow_version, conversation_id,"
                    " contact_id, status, current_node_id, variables, transcript)"
                    " SELECT gen_random_uuid(), company_id, :flow, 2, id, contact_id, :status,"
                    " :node, '{}', '[]' FROM conversations WHERE id = :conversation"
                ),
                {"flow": flow_id, "status": status, "node": node,
                 "conversation": stored.conversation_id},
            )  # fmt: skip


async def test_two_versions_are_compared_and_runs_are_counted_on_their_nodes(
    wide: Page, tenant: Tenant, sessions: SessionFactory
):
    page = wide
    flow = await create(tenant, sample())
    path = f"/api/v1/flows/{flow['id']}"
    assert (await tenant.client.post(f"{path}/publish")).status_code == 201
    second = sample()
    nodes = {n["id"]: n for n in second["nodes"]}
    nodes["greeting"]["text"] = "Hello there!"  # changed
    nodes["thanks"]["next"] = "extra"  # a new node after thanks
    second["nodes"].append({"id": "extra", "type": "send_text", "text": "P.S.", "next": "done"})
    second["nodes"] = [n for n in second["nodes"] if n["id"] not in ("follow_up_wait", "follow_up")]
    assert (await tenant.client.put(path, json=second)).status_code == 200, "v2"
    assert (await tenant.client.post(f"{path}/publish")).status_code == 201
    runs = [("ask_budget", "waiting")] * 2 + [("ask_budget", "failed"), ("done", "completed")]
    await seed_runs(sessions, tenant, flow["id"], runs)
    counted = (await tenant.client.get(f"{path}/node-runs")).json()
    assert {(r["node_id"], r["status"], r["runs"]) for r in counted} == {
        ("ask_budget", "waiting", 2), ("ask_budget", "failed", 1), ("done", "completed", 1)
    }  # fmt: skip

    await sign_in(page, tenant.api_key, f"/app/#/flows/{flow['id']}/edit")
    await expect(page.locator('.fnode[data-id="ask_budget"] .run-count')).to_have_text(
        "2 here · 1 ended"
    )
    await page.get_by_role("tab", name="Versions").click()
    for version, running in ((2, "2 in flight"), (1, "0 in flight")):  # the waiting ones, on v2
        await expect(page.locator(f'li[data-version="{version}"] .in-flight')).to_have_text(running)
    await page.get_by_label("Compare from").select_option("1")
    await page.get_by_label("Compare to").select_option("2")
    await page.get_by_role("button", name="Compare").click()
    await expect(page.locator(".read-only-note")).to_contain_text("1 added, 2 changed, 2 removed")
    for node_id, mark in (("greeting", "changed"), ("thanks", "changed"), ("extra", "added"),
                          ("follow_up", "removed"), ("follow_up_wait", "removed")):  # fmt: skip
        await expect(page.locator(f'.fnode.diff-{mark}[data-id="{node_id}"]')).to_have_count(1)
    await expect(page.locator(".fnode.diff-changed")).to_have_count(2)
    await page.set_viewport_size(DESKTOP)
    await page.get_by_role("button", name="Fit").click()
    await screenshot(page, "flow-compare")
    await page.get_by_role("button", name="Open v1").click()
    await expect(page.locator(".read-only-note")).to_contain_text("Version 1, read-only.")
    await expect(page.locator('.fnode[data-id="follow_up"]')).to_have_count(1)
    await expect(page.get_by_role("button", name="Save draft")).to_be_hidden()
    await page.get_by_role("button", name="Back to the draft").click()
    await expect(page.locator('.fnode[data-id="extra"]')).to_have_count(1)
    await expect(page.get_by_role("button", name="Save draft")).to_be_visible()
    await page.set_viewport_size(PHONE)  # desktop only, and it says so
    await expect(page.get_by_text("needs a screen at least 900 pixels wide")).to_be_visible()
    await expect(page.locator(".flow-canvas")).to_be_hidden()


async def test_a_template_is_picked_from_the_synced_ones_and_an_ask_lists_the_buttons_ids(
    wide: Page, tenant: Tenant, sessions: SessionFactory
):
    page = wide
    buttons = [{"id": "yes", "title": "Sim"}, {"id": "no", "title": "Não"}]
    document = {"name": "Promo", "start": "promo", "nodes": [
        {"id": "promo", "type": "send_template", "name": "typed_by_hand", "next": "menu"},
        {"id": "menu", "type": "send_buttons", "text": "Quer?", "buttons": buttons,
         "next": "answer"},
        {"id": "answer", "type": "ask", "variable": "reply", "validation": "choice",
         "choices": ["Sim"], "next": "done"},
        {"id": "done", "type": "end"}]}  # fmt: skip
    flow = await create(tenant, document)
    side = page.locator(".editor-side")
    await sign_in(page, tenant.api_key, f"/app/#/flows/{flow['id']}/edit")
    await page.locator('.fnode[data-id="promo"] .body').click()
    await expect(side.locator(".template-note")).to_contain_text("No synced templates")
    await expect(side.get_by_label("Pick a synced template")).to_be_hidden()

    instance = await create_cloud_instance(tenant)
    async with transaction(sessions) as session:
        for name, status in (("promo_natal", TemplateStatus.APPROVED),
                             ("order_ready", TemplateStatus.PENDING)):  # fmt: skip
            session.add(Template(company_id=uuid.UUID(tenant.id), name=name, language="pt_BR",
                                 instance_id=uuid.UUID(instance["id"]), status=status))  # fmt: skip
    await page.reload()
    await page.locator('.fnode[data-id="promo"] .body').click()
    picker = side.get_by_label("Pick a synced template")
    await expect(picker.locator("option")).to_have_text([
        "Pick a synced template…", "order_ready · pt_BR · PENDING: not approved",
        "promo_natal · pt_BR"])  # fmt: skip
    await picker.select_option(label="order_ready · pt_BR · PENDING: not approved")
    await expect(side.locator('.field[data-field="name"] input')).to_have_value("order_ready")
    await expect(side.locator('.field[data-field="language"] input')).to_have_value("pt_BR")
    await expect(side.locator(".template-note")).to_contain_text("is PENDING")
    await picker.select_option(label="promo_natal · pt_BR")
    await expect(side.locator(".template-note")).to_have_text("")

    # the ask after the buttons: their ids shown, the one it does not list marked, then listed
    await page.locator('.fnode[data-id="answer"] .body').click()
    offered = side.locator(".offered-choices")
    await expect(offered).to_have_text(
        "menu offers yes (Sim), no (Não). Not listed here, so a tap is refused: no."
    )
    await side.get_by_role("button", name="Use the buttons' ids").click()
    await expect(side.locator('.field[data-field="choices"] textarea')).to_have_value("yes\nno")
    await expect(offered).to_have_text("menu offers yes (Sim), no (Não).")
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator(".editor-status")).to_contain_text("Saved")
    stored = (await tenant.client.get(f"/api/v1/flows/{flow['id']}")).json()["draft_definition"]
    assert stored["nodes"][0].items() >= {"name": "promo_natal", "language": "pt_BR"}.items()
    assert stored["nodes"][2]["choices"] == ["yes", "no"]

    # the simulator stops at the ask with the buttons to tap; a tap plays the button's id
    await page.get_by_role("button", name="Run simulation").click()
    await expect(page.locator(".sim-outcome[data-status=waiting]")).to_contain_text("at answer")
    await page.locator('.sim-taps [data-choice="no"]').click()
    await expect(page.locator(".sim-outcome[data-status=completed]")).to_be_visible()
    await expect(page.get_by_label("Customer replies")).to_have_value("no")
    await expect(page.locator(".step-variables").last).to_contain_text('reply = "no"')


def big_flow(blocks: int) -> dict[str, Any]:
    """A flow of 4 nodes per block (ask, condition, two messages) and an end."""
    nodes: list[dict[str, Any]] = []
    for b in range(blocks):
        after = f"ask_{b + 1}" if b + 1 < blocks else "done"
        nodes += [
            {"id": f"ask_{b}", "type": "ask", "prompt": f"Question {b}?", "variable": f"a{b}",
             "next": f"check_{b}"},
            {"id": f"check_{b}", "type": "condition",
             "branches": [{"when": f"a{b} == 'yes'", "next": f"yes_{b}"}], "default": f"no_{b}"},
            {"id": f"yes_{b}", "type": "send_text", "text": "Great", "next": after},
            {"id": f"no_{b}", "type": "send_text", "text": "OK", "next": after},
        ]  # fmt: skip
    nodes.append({"id": "done", "type": "end"})
    return {"name": "Big flow", "start": "ask_0", "nodes": nodes}


# Pans the canvas a frame at a time, as a pointer drag on its background does; frame times as the
# inbox's virtual-list scroll measures them, and the same count of frames with nothing to do
# first: the floor this machine gives at the moment (it is shared, and its load varies).
PAN = """async () => {
  const svg = document.querySelector('.flow-canvas');
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  const measure = async (step) => {
    const frames = [];
    let last = await frame().then(() => performance.now());
    for (let i = 1; i <= 180; i++) {
      step(i);
      await frame();
      const now = performance.now();
      frames.push(now - last);
      last = now;
    }
    frames.sort((a, b) => a - b);
    const pct = (p) => frames[Math.min(frames.length - 1, Math.floor(p * frames.length))];
    return { frames: frames.length, p50: pct(0.5), p95: pct(0.95), max: pct(1) };
  };
  const idle = await measure(() => {});
  const r = svg.getBoundingClientRect();
  const x0 = r.left + 5, y0 = r.top + 5;
  const at = {clientX: x0, clientY: y0, button: 0, bubbles: true};
  svg.dispatchEvent(new PointerEvent('pointerdown', at));
  const pan = await measure((i) => window.dispatchEvent(
    new PointerEvent('pointermove', {clientX: x0 - 8 * i, clientY: y0 - 2 * i})));
  window.dispatchEvent(new PointerEvent('pointerup', at));
  return { idle, pan };
}"""
DOWNLOADED = """() => {
  const assets = performance.getEntriesByType('resource')
    .filter((e) => /\\.(js|css)$/.test(e.name));
  const editor = assets.filter((e) => /(editor|flowmodel|flow-templates)/.test(e.name));
  const sum = (list, key) => list.reduce((total, e) => total + e[key], 0);
  return { files: assets.length, compressed: sum(assets, 'encodedBodySize'),
           uncompressed: sum(assets, 'decodedBodySize'), editorFiles: editor.length,
           editorCompressed: sum(editor, 'encodedBodySize'),
           editorUncompressed: sum(editor, 'decodedBodySize') };
}"""


async def test_a_two_hundred_node_flow_opens_and_pans_and_the_editor_fits_the_budget(
    wide: Page, tenant: Tenant
):
    page = wide
    flow = await create(tenant, big_flow(50))
    await sign_in(page, tenant.api_key, "/app/")
    await expect(page.get_by_role("link", name="Flows")).to_be_visible()
    started = time.perf_counter()
    await page.goto(f"/app/#/flows/{flow['id']}/edit")
    await expect(page.locator(".fnode")).to_have_count(201)
    opened = time.perf_counter() - started
    before = await page.locator(".viewport").get_attribute("transform")
    seen = await page.evaluate(PAN)
    assert await page.locator(".viewport").get_attribute("transform") != before  # it panned
    figures = await page.evaluate(DOWNLOADED)
    load = os.getloadavg()[0]
    print(f"\n201-node flow: opened in {opened:.2f} s, {seen}, load {load:.1f}; {figures}")
    # the UI's budget for what a visit downloads (tests/test_ui.py), editor included
    assert figures["compressed"] < 150_000, figures


async def test_every_starter_flow_is_valid_and_the_lead_one_is_the_example(
    wide: Page, tenant: Tenant
):
    page = wide
    await sign_in(page, tenant.api_key, "/app/#/flows")
    templates = await page.evaluate(
        "async () => (await import('./js/flow-templates.js')).TEMPLATES"
    )
    assert set(templates) == {"lead_qualification", "appointment_booking", "order_status",
                              "nps_survey", "faq_ai"}  # fmt: skip
    for name, template in templates.items():
        checked = await tenant.client.post("/api/v1/flows/validate", json=template["doc"])
        assert checked.json() == {"issues": []}, (name, checked.text)
    assert semantics(templates["lead_qualification"]["doc"]) == semantics(sample())

    await page.get_by_label("Start from").select_option("order_status")
    await page.get_by_role("button", name="New flow").click()
    await expect(page.locator('.fnode[data-id="lookup"]')).to_be_visible()
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator(".editor-status")).to_have_text("Saved.")
    [saved] = (await tenant.client.get("/api/v1/flows")).json()["data"]
    assert saved["name"] == "Order status"
    assert page.url.endswith(f"#/flows/{saved['id']}/edit")
