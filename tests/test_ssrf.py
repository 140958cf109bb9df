"""The egress policy where tenants aim requests, on the embedded stack: a flow's http_request
node, send_media URLs and the media of an agent's reply. A static destination is refused when
the flow is saved or the message posted (422 naming the node or field); one that variables give
is refused when the request would be made (the node's failure branch, the message FAILED, each
with the reason). The test settings allow 127.0.0.1 only (the loopback servers that play outside
services), so the other loopback addresses stay refused here."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from tests.fixtures.app import Tenant
from tests.fixtures.network import CAT, network_log
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import eventually, evolution_customer
from tests.test_flows_runs import ended, new_customer, published, start_run
from zapflow.db import SessionFactory
from zapflow.models import Message, MessageDirection

pytestmark = pytest.mark.usefixtures("worker")
TARGETS = {
    "loopback": "127.0.0.2:7233",
    "loopback_v6": "[::1]:8000",
    "mapped": "[::ffff:127.0.0.2]:5432",
    "metadata": "169.254.169.254",
    "metadata_int": "2852039166",
    "private": "10.0.0.1:6379",
}


async def test_a_flows_http_request_to_a_refused_address_takes_its_failure_branch(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    names = list(TARGETS)
    nodes: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        after = names[i + 1] if i + 1 < len(names) else "done"
        nodes.append(
            {"id": name, "type": "http_request", "method": "GET", "url": f"http://{{{{{name}}}}}/",
             "retries": 2, "save": {f"{name}_status": "status"}, "next": "done",
             "on_failure": after}
        )  # fmt: skip
    nodes.append({"id": "done", "type": "end"})
    document = {"name": "ssrf", "start": names[0], "variables": TARGETS, "nodes": nodes}
    flow_id = await published(tenant.client, document)
    _, conversation = await new_customer(tenant, provider_server)
    with network_log() as log:
        started = await start_run(tenant.client, flow_id, conversation["contact_id"])
        run = await ended(tenant.client, started["id"])
    assert run["status"] == "completed", run
    failures = {t["node"]: t["error"] for t in run["transcript"] if t["event"] == "failed"}
    assert set(failures) == set(names)
    assert all(error.startswith("refused: ") for error in failures.values()), failures
    assert "cloud metadata" in failures["metadata"]
    assert "cloud metadata" in failures["metadata_int"]
    assert "loopback" in failures["mapped"]
    assert not any(key.endswith("_status") for key in run["variables"])
    assert not [c for c in log.connects if c[0] != "127.0.0.1"]


@pytest.mark.parametrize(
    ("node", "field", "code"),
    [
        ({"type": "http_request", "url": "http://169.254.169.254/latest/meta-data/"},
         "url", "egress_refused"),
        ({"type": "http_request", "url": "http://0x7f000002:7233/{{contact.name}}"},
         "url", "egress_refused"),
        ({"type": "http_request", "url": "gopher://example.com/{{contact.name}}"},
         "url", "egress_refused"),
        ({"type": "http_request", "url": "https://api.example.com/", "headers": {"Host": "x"}},
         "headers.Host", "forbidden_header"),
        ({"type": "http_request", "url": "https://api.example.com/", "timeout": "5m"},
         "timeout", "timeout_too_long"),
        ({"type": "send_media", "url": "http://[::1]/cat.jpg"}, "url", "egress_refused"),
        ({"type": "send_media", "url": "file:///etc/passwd"}, "url", "egress_refused"),
    ],
)  # fmt: skip
async def test_a_static_destination_the_policy_refuses_is_a_422_naming_the_node(
    tenant: Tenant, node: dict[str, Any], field: str, code: str
) -> None:
    document = {
        "name": "static",
        "start": "call",
        "nodes": [{"id": "call", **node, "next": "done"}, {"id": "done", "type": "end"}],
    }
    response = await tenant.client.post("/api/v1/flows", json=document)
    assert response.status_code == 422, response.text
    issues = response.json()["error"]["details"]
    assert [(i["node_id"], i["field"], i["code"]) for i in issues] == [("call", field, code)]


async def test_the_operators_allow_list_lets_a_flow_reach_an_internal_host(
    tenant: Tenant,
) -> None:
    document = {
        "name": "internal",
        "start": "call",
        "nodes": [
            {"id": "call", "type": "http_request", "url": "http://127.0.0.1:9/hook",
             "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip
    assert (await tenant.client.post("/api/v1/flows", json=document)).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://2852039166/x.jpg",
        "http://0x7f000002/x.jpg",
        "http://[::1]:8000/x.jpg",
        "http://10.0.0.1/x.jpg",
        "http://localhost/x.jpg",
    ],
)
async def test_a_replys_media_url_the_policy_refuses_is_a_422(
    tenant: Tenant, provider_server: ProviderServer, url: str
) -> None:
    _, conversation = await new_customer(tenant, provider_server)
    response = await tenant.client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"type": "media", "media": {"url": url, "kind": "image"}},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith("media.url: ")


async def _outbound(sessions: SessionFactory, tenant: Tenant) -> list[Message]:
    async with sessions() as session:
        query = select(Message).where(
            Message.company_id == uuid.UUID(tenant.id),
            Message.direction == MessageDirection.OUTBOUND,
        )
        return list((await session.execute(query)).scalars())


async def test_an_evolution_media_url_refused_at_send_time_fails_the_message(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    """A URL whose host comes from a variable is checked when the message is sent: the message
    FAILS with the reason, and Evolution is never asked."""
    phone, conversation = await evolution_customer(tenant)
    document = {
        "name": "media",
        "start": "photo",
        "variables": {"cdn": "10.0.0.1"},
        "nodes": [
            {"id": "photo", "type": "send_media", "url": "http://{{cdn}}/cat.jpg",
             "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip
    flow_id = await published(tenant.client, document)
    await ended(
        tenant.client, (await start_run(tenant.client, flow_id, conversation["contact_id"]))["id"]
    )
    [message] = await eventually(
        lambda: _outbound(sessions, tenant), lambda rows: rows and rows[0].status == "failed"
    )
    assert "media URL refused: 10.0.0.1 is a private" in str(message.error), message.error
    assert provider_server.sent_to(phone) == []


async def test_evolution_gets_the_media_zapflow_downloaded_through_the_policy(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory, loopback_server: str
) -> None:
    """Evolution would download a URL itself, from inside the operator's network, following
    redirects: zapflow downloads it (allowed here: the loopback test server) and sends the
    bytes; a URL that redirects to the metadata address FAILS without reaching Evolution."""
    phone, conversation = await evolution_customer(tenant)
    path = f"/api/v1/conversations/{conversation['id']}/messages"
    cat = {"type": "media", "media": {"url": f"http://{loopback_server}/cat.jpg", "kind": "image"}}
    assert (await tenant.client.post(path, json=cat)).status_code == 202
    [sent] = await eventually(lambda: _sent(provider_server, phone), lambda found: len(found) == 1)
    assert sent.json["media"] == base64.b64encode(CAT).decode()
    assert sent.json["mimetype"] == "image/jpeg"

    metadata = "http://169.254.169.254/latest/meta-data/"
    sneaky = {"url": f"http://{loopback_server}/redirect?to={metadata}", "kind": "image"}
    with network_log() as log:
        posted = await tenant.client.post(path, json={"type": "media", "media": sneaky})
        assert posted.status_code == 202
        failed = await eventually(
            lambda: _outbound(sessions, tenant),
            lambda rows: any(r.status == "failed" for r in rows),
        )
    [message] = [m for m in failed if m.status == "failed"]
    assert "media URL refused: 169.254.169.254 is a cloud metadata address" in str(message.error)
    assert len(provider_server.sent_to(phone)) == 1
    assert not [c for c in log.connects if c[0] != "127.0.0.1"]


async def _sent(provider: ProviderServer, phone: str) -> list[Any]:
    return provider.sent_to(phone)
