"""The flows API without running flows: documents in JSON or YAML, node-level 422s, publishing
versions, the JSON Schema, diagrams, simulation, and other companies' flows as 404s."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fixtures.app import Tenant

SAMPLE = Path(__file__).parent.parent / "examples" / "flows" / "lead_qualification.yaml"


def sample() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    return loaded


async def create_flow(client: httpx.AsyncClient, document: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/flows", json=document)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_schema_is_served_for_editors(tenant: Tenant) -> None:
    response = await tenant.client.get("/api/v1/flows/schema")
    assert response.status_code == 200
    schema = response.json()
    assert schema["title"] == "zapflow flow"
    kinds = [d.get("properties", {}).get("type", {}) for d in schema["$defs"].values()]
    node_types = {kind["const"] for kind in kinds if "const" in kind}
    assert {"send_text", "ask", "wait", "condition", "http_request", "handoff", "end"} <= node_types


async def test_create_from_yaml_publish_and_edit_the_draft(tenant: Tenant) -> None:
    response = await tenant.client.post(
        "/api/v1/flows", content=SAMPLE.read_bytes(), headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    flow = response.json()
    assert (flow["name"], flow["status"], flow["current_version"]) == (
        "Lead qualification", "draft", None,
    )  # fmt: skip

    published = await tenant.client.post(f"/api/v1/flows/{flow['id']}/publish")
    assert published.status_code == 201, published.text
    assert published.json()["version"] == 1

    edited = sample()
    edited["nodes"][0]["text"] = "Hello again!"
    replaced = await tenant.client.put(f"/api/v1/flows/{flow['id']}", json=edited)
    assert replaced.status_code == 200, replaced.text
    current = (await tenant.client.get(f"/api/v1/flows/{flow['id']}")).json()
    assert current["current_version"] == 1  # editing publishes nothing
    assert current["draft_definition"]["nodes"][0]["text"] == "Hello again!"
    assert {t["type"] for t in current["triggers"]} == {"keyword", "first_message"}

    second = await tenant.client.post(f"/api/v1/flows/{flow['id']}/publish")
    assert second.json()["version"] == 2
    listed = (await tenant.client.get("/api/v1/flows")).json()["data"]
    assert [f["id"] for f in listed] == [flow["id"]]


async def test_invalid_flows_are_refused_with_node_level_errors(tenant: Tenant) -> None:
    document = sample()
    document["nodes"][0]["next"] = "nowhere"  # greeting → unknown; ask_name... unreachable
    response = await tenant.client.post("/api/v1/flows", json=document)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_flow"
    assert error["message"].startswith("greeting.next:")
    found = {(d["node_id"], d["field"], d["code"]) for d in error["details"]}
    assert ("greeting", "next", "unknown_node") in found
    assert ("ask_name", "id", "unreachable") in found

    bad_type = sample()
    bad_type["nodes"][1]["validation"] = "colour"
    response = await tenant.client.post("/api/v1/flows", json=bad_type)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["node_id"] == "ask_name"

    for body, content_type in [
        (b"- not\n- a mapping", "application/yaml"),
        (b"{", "application/json"),
    ]:
        response = await tenant.client.post(
            "/api/v1/flows", content=body, headers={"content-type": content_type}
        )
        assert response.status_code == 422, response.text

    flow = await create_flow(tenant.client, sample())
    response = await tenant.client.put(f"/api/v1/flows/{flow['id']}", json=document)
    assert response.status_code == 422


async def test_diagram_and_simulation_of_draft_and_versions(tenant: Tenant) -> None:
    flow = await create_flow(tenant.client, sample())
    diagram = await tenant.client.get(f"/api/v1/flows/{flow['id']}/diagram")
    assert diagram.status_code == 200
    assert diagram.headers["content-type"].startswith("text/plain")
    assert diagram.text.startswith("flowchart TD")
    assert (
        await tenant.client.get(f"/api/v1/flows/{flow['id']}/diagram?version=1")
    ).status_code == 404

    simulated = await tenant.client.post(
        f"/api/v1/flows/{flow['id']}/simulate", json={"replies": ["Maria", "lots", "12000"]}
    )
    assert simulated.status_code == 200, simulated.text
    result = simulated.json()
    assert result["status"] == "completed"
    assert result["variables"]["budget"] == 12000
    assert [s["text"] for s in result["sent"]][
        -1
    ] == "Thanks, Maria! A specialist will take it from here."

    timed_out = await tenant.client.post(
        f"/api/v1/flows/{flow['id']}/simulate", json={"replies": [None]}
    )
    assert [t["event"] for t in timed_out.json()["transcript"]][2] == "timeout"


async def test_a_draft_cannot_run(tenant: Tenant) -> None:
    flow = await create_flow(tenant.client, sample())
    response = await tenant.client.post(
        f"/api/v1/flows/{flow['id']}/runs", json={"contact_id": str(uuid.uuid4())}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "flow_not_published"


async def test_another_companys_flows_are_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    other = other_tenant.client
    flow = await create_flow(tenant.client, sample())
    base = f"/api/v1/flows/{flow['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("PUT", base, sample()),
        ("DELETE", base, None),
        ("POST", f"{base}/publish", None),
        ("GET", f"{base}/diagram", None),
        ("POST", f"{base}/simulate", {"replies": []}),
        ("GET", f"{base}/runs", None),
        ("POST", f"{base}/runs", {"contact_id": str(uuid.uuid4())}),
    ]:
        response = await other.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
    assert (await other.get("/api/v1/flows")).json()["data"] == []
    assert (await tenant.client.get(base)).json()["status"] == "draft"


async def test_the_editors_layout_is_kept_and_changes_nothing_else(tenant: Tenant) -> None:
    document = sample()
    document["layout"] = {"greeting": {"x": 10, "y": 20.5}, "done": {"x": -40, "y": 900}}
    flow = await create_flow(tenant.client, document)
    assert flow["draft_definition"]["layout"] == document["layout"]
    without = await create_flow(tenant.client, sample())
    stored = dict(flow["draft_definition"])
    del stored["layout"]
    assert stored == without["draft_definition"]  # normalized documents compare equal
    far = {**sample(), "layout": {"greeting": {"x": 10**7, "y": 0}}}
    refused = await tenant.client.post("/api/v1/flows", json=far)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "layout.greeting.x"
    simulated = await tenant.client.post(
        f"/api/v1/flows/{flow['id']}/simulate", json={"replies": ["Maria", "12000"]}
    )
    assert simulated.json()["status"] == "completed", simulated.text


async def test_a_draft_with_issues_is_saved_when_asked_and_never_published(
    tenant: Tenant,
) -> None:
    flow = await create_flow(tenant.client, sample())
    broken = sample()
    del broken["nodes"][0]["next"]  # greeting leads nowhere
    broken["nodes"][1]["prompt"] = "{{nobody}}?"
    path = f"/api/v1/flows/{flow['id']}"
    assert (await tenant.client.put(path, json=broken)).status_code == 422
    saved = await tenant.client.put(f"{path}?allow_issues=true", json=broken)
    assert saved.status_code == 200, saved.text
    assert saved.json()["draft_definition"] == broken  # kept as written

    checked = await tenant.client.post("/api/v1/flows/validate", json=broken)
    assert checked.status_code == 200
    found = {(i["node_id"], i["field"], i["code"]) for i in checked.json()["issues"]}
    assert ("greeting", "next", "dead_end") in found
    assert ("ask_name", "prompt", "undefined_variable") in found

    refused = await tenant.client.post(f"{path}/publish")
    assert refused.status_code == 422
    assert "greeting" in {i["node_id"] for i in refused.json()["error"]["details"]}
    simulated = await tenant.client.post(f"{path}/simulate", json={"replies": []})
    assert simulated.status_code == 422  # names the issue, never a 500
    diagram = await tenant.client.get(f"{path}/diagram")
    assert diagram.status_code == 422

    nameless = {"nodes": []}
    assert (await tenant.client.put(f"{path}?allow_issues=true", json=nameless)).status_code == 422
    empty = await tenant.client.post(
        "/api/v1/flows?allow_issues=true", json={"name": "Blank", "start": "", "nodes": []}
    )
    assert empty.status_code == 201, empty.text
    assert (await tenant.client.post("/api/v1/flows/validate", json=sample())).json() == {
        "issues": []
    }


async def test_versions_are_listed_and_read_and_runs_counted_per_node(tenant: Tenant) -> None:
    flow = await create_flow(tenant.client, sample())
    path = f"/api/v1/flows/{flow['id']}"
    assert (await tenant.client.get(f"{path}/versions")).json()["data"] == []
    for text in ("first", "second"):
        edited = sample()
        edited["nodes"][0]["text"] = text
        assert (await tenant.client.put(path, json=edited)).status_code == 200
        published = await tenant.client.post(f"{path}/publish", json={"note": f"{text} try"})
        assert published.status_code == 201, published.text
    listed = (await tenant.client.get(f"{path}/versions")).json()["data"]
    assert [(v["version"], v["note"]) for v in listed] == [(2, "second try"), (1, "first try")]
    first = (await tenant.client.get(f"{path}/versions/1")).json()
    assert first["definition"]["nodes"][0]["text"] == "first"
    assert (await tenant.client.get(f"{path}/versions/3")).status_code == 404
    assert (await tenant.client.get(f"{path}/node-runs")).json() == []
