"""Schedule and deal-stage triggers: publishing creates their Temporal Schedules, a firing
starts one run per contact in their conversation (once per firing or per stage change, even
when asked again), and archiving the flow removes the schedules."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import eventually, ok_json
from tests.test_flows_runs import ended, new_customer, published, sales_funnel
from zapflow.config import Settings
from zapflow.flows.schedules import schedule_id
from zapflow.temporal import connect

pytestmark = pytest.mark.usefixtures("worker")


async def runs_of(tenant: Tenant, flow_id: str, count: int) -> list[dict[str, Any]]:
    async def listed() -> list[dict[str, Any]]:
        return list(ok_json(await tenant.client.get(f"/api/v1/flows/{flow_id}/runs"))["data"])

    runs = await eventually(listed, lambda found: len(found) >= count, within=30)
    return [await ended(tenant.client, run["id"]) for run in runs]


async def fire(client: Client, flow_id: str) -> None:
    await client.get_schedule_handle(schedule_id(flow_id, 0)).trigger()


async def test_a_schedule_trigger_runs_the_flow_for_tagged_contacts(
    tenant: Tenant, provider_server: ProviderServer, settings: Settings
) -> None:
    tagged, conversation = await new_customer(tenant, provider_server)
    untagged, _ = await new_customer(tenant, provider_server)
    response = await tenant.client.post(
        f"/api/v1/contacts/{conversation['contact_id']}/tags", json={"tag": "vip"}
    )
    assert response.status_code == 200, response.text
    flow_id = await published(
        tenant.client,
        {
            "name": "weekly",
            "triggers": [{"type": "schedule", "cron": "0 9 * * 1", "tag": "vip"}],
            "start": "hello",
            "nodes": [
                {"id": "hello", "type": "send_text", "text": "Weekly news!", "next": "done"},
                {"id": "done", "type": "end"},
            ],
        },
    )
    client = await connect(settings)
    described = await client.get_schedule_handle(schedule_id(flow_id, 0)).describe()
    [calendar] = described.schedule.spec.calendars  # the server keeps the cron as a calendar
    assert ([h.start for h in calendar.hour], [d.start for d in calendar.day_of_week]) == ([9], [1])

    await fire(client, flow_id)
    [run] = await runs_of(tenant, flow_id, 1)
    assert (run["status"], run["contact_id"]) == ("completed", conversation["contact_id"])
    assert await tagged.wait_for(1) == ["Weekly news!"]
    assert untagged.received() == []

    assert (await tenant.client.delete(f"/api/v1/flows/{flow_id}")).status_code == 204
    with pytest.raises(RPCError):
        await client.get_schedule_handle(schedule_id(flow_id, 0)).describe()


async def test_a_deal_entering_a_stage_runs_the_flow_once(
    tenant: Tenant, provider_server: ProviderServer, settings: Settings
) -> None:
    stages = await sales_funnel(tenant.client)
    customer, conversation = await new_customer(tenant, provider_server)
    flow_id = await published(
        tenant.client,
        {
            "name": "qualified",
            "triggers": [{"type": "deal_stage", "stage_id": stages["Qualified"]}],
            "variables": {"deal_id": None},
            "start": "hello",
            "nodes": [
                {"id": "hello", "type": "send_text", "text": "A specialist will call you.",
                 "next": "move"},
                {"id": "move", "type": "move_deal", "stage": "Nurture", "next": "done"},
                {"id": "done", "type": "end"},
            ],
        },
    )  # fmt: skip
    deal = await tenant.client.post(
        "/api/v1/deals",
        json={"title": "Lead", "funnel_id": (await _funnel_id(tenant)),
              "stage_id": stages["New"], "contact_id": conversation["contact_id"]},
    )  # fmt: skip
    assert deal.status_code == 201, deal.text
    moved = await tenant.client.post(
        f"/api/v1/deals/{deal.json()['id']}/move", json={"stage_id": stages["Qualified"]}
    )
    assert moved.status_code == 200

    client = await connect(settings)
    await fire(client, flow_id)
    [run] = await runs_of(tenant, flow_id, 1)
    assert run["status"] == "completed", run
    assert run["variables"]["deal_id"] == deal.json()["id"]
    assert await customer.wait_for(1) == ["A specialist will call you."]
    now = (await tenant.client.get(f"/api/v1/deals/{deal.json()['id']}")).json()
    assert now["stage_id"] == stages["Nurture"]

    await fire(client, flow_id)  # the same stage change again: no second run
    await _trigger_runs_done(client, flow_id)
    assert len(await runs_of(tenant, flow_id, 1)) == 1
    assert len(customer.received()) == 1
    assert (await tenant.client.delete(f"/api/v1/flows/{flow_id}")).status_code == 204  # unpoll


async def _funnel_id(tenant: Tenant) -> str:
    funnels = (await tenant.client.get("/api/v1/funnels")).json()
    rows = funnels["data"] if isinstance(funnels, dict) else funnels
    return str(rows[0]["id"])


async def _trigger_runs_done(client: Client, flow_id: str) -> None:
    """Every firing of the flow's schedule so far has finished."""

    async def running() -> int:
        described = await client.get_schedule_handle(schedule_id(flow_id, 0)).describe()
        return len(described.info.running_actions)

    async def fired() -> int:
        described = await client.get_schedule_handle(schedule_id(flow_id, 0)).describe()
        return described.info.num_actions

    await eventually(fired, lambda n: n >= 2)
    await eventually(running, lambda n: n == 0)
