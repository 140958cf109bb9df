"""The scheduled template sync against the fake Graph API: the ``template-sync`` Schedule (and
``media-retention``) exists once the campaigns worker started (and making sure of it again
changes nothing), and a run syncs every Cloud number's templates across pages, skipping a
number it cannot sync."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleOverlapPolicy

from tests.fixtures.app import Tenant
from tests.fixtures.campaigns import PROMO, cloud_number
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import eventually
from zapflow.config import Settings
from zapflow.temporal import connect
from zapflow.worker.schedules import MEDIA_SCHEDULE_ID, SCHEDULE_ID, ensure_schedules

pytestmark = pytest.mark.usefixtures("worker")


async def test_the_schedule_syncs_every_cloud_number(
    tenant: Tenant, provider_server: ProviderServer, settings: Settings
) -> None:
    client = await connect(settings)
    await ensure_schedules(client, settings)  # again, as a second worker would
    handle = client.get_schedule_handle(SCHEDULE_ID)
    described = await handle.describe()
    [interval] = described.schedule.spec.intervals
    assert interval.every.total_seconds() == settings.template_sync_seconds
    media = await client.get_schedule_handle(MEDIA_SCHEDULE_ID).describe()  # its sweep: the
    [interval] = media.schedule.spec.intervals  # activity's test in tests/test_media_files.py
    assert interval.every.total_seconds() == settings.media_retention_sweep_seconds

    number = await cloud_number(tenant)
    account = number["settings"]["waba_id"]
    many = [{**PROMO, "name": f"promo_{i}", "id": str(uuid.uuid4().int)[:15]} for i in range(130)]
    provider_server.templates[account] = many  # two pages of 100
    refused = await cloud_number(tenant)  # an account id that is none: skipped
    changed = await tenant.client.patch(
        f"/api/v1/instances/{refused['id']}", json={"settings": {"waba_id": "none"}}
    )
    assert changed.status_code == 200, changed.text
    # the hourly run may be under way (its list read before these numbers existed): the
    # schedule's own policy would skip this trigger, so it overlaps instead
    await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)

    async def synced() -> int:
        listed = await tenant.client.get("/api/v1/templates", params={"instance_id": number["id"]})
        return len(listed.json()["data"])

    assert await eventually(synced, lambda n: n == 130, within=60) == 130
    # the run syncs every company's numbers: let it end here, not inside the next test's sync
    [action] = [a.action for a in (await handle.describe()).info.recent_actions][-1:]
    assert isinstance(action, ScheduleActionExecutionStartWorkflow)
    run = client.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id)
    await asyncio.wait_for(run.result(), 60)
