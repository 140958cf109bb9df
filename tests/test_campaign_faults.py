"""Campaigns through crashes and outages, on a system of its own (stack, API, worker process):
afterwards the campaign's ledger check (tests/fixtures/campaigns.py) finds every recipient
reached the provider exactly once, or failed with a reason having reached it at most once.

- 300 recipients (2,000 in ``make test-faults``) at up to 1,000 msg/s (the number's
  throughput raised to match, so the machine is the limit and the test stays short); a third
  of the way in, the worker is SIGKILLed with sends in flight and the provider goes down for
  5 seconds (30 in ``make test-faults``: ten 429s carrying Meta's 130429, then 503s); the
  campaign resumes and completes.
- A campaign created while the worker (and its inbox relay) is down starts when it returns:
  the start is an inbox row committed with the campaign, not a call made after the commit.
- The messaging tier, with a 3-second window instead of 24 hours
  (``ZAPFLOW_CAMPAIGN_TIER_WINDOW_SECONDS``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from temporalio.service import RPCError

from tests.fixtures.campaigns import (
    audience,
    campaign,
    campaign_body,
    check_campaign,
    create,
    finished,
    number_with_templates,
    provider_successes,
    stats,
)
from tests.fixtures.system import System, running_system, scale
from tests.fixtures.traffic import eventually
from zapflow.temporal import connect

TIER_WINDOW = 3.0


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    async with running_system(tmp_path_factory.mktemp("campaigns")) as running:
        running.kill_worker()
        running.worker_env["ZAPFLOW_CAMPAIGN_TIER_WINDOW_SECONDS"] = str(TIER_WINDOW)
        # the loaded machine answers slowly: fewer lost answers (failed, never resent)
        running.worker_env["ZAPFLOW_PROVIDER_TIMEOUT_SECONDS"] = "10"
        running.start_worker()
        yield running


@pytest.mark.parametrize("size", scale(300, 2000))
async def test_a_campaign_survives_a_sigkill_and_an_outage(system: System, size: float) -> None:
    recipients = int(size)
    outage = 5.0 if recipients < 1000 else 30.0
    tenant = await system.new_tenant()
    instance = await number_with_templates(tenant, system.provider, throughput=1000)
    prefix = await audience(system.sessions, tenant.id, recipients, "todos")
    started = time.monotonic()
    made = await create(tenant, campaign_body(instance, "todos", throughput=1000))

    async def sent() -> int:
        return sum(provider_successes(system.provider, prefix).values())

    await eventually(sent, lambda n: n >= recipients // 3, within=120)
    system.kill_worker()  # sends in flight: their claims are left "sending"
    system.provider.fail_next(10, status=429)  # (#130429) Rate limit hit, then the outage
    system.provider.fail_for(outage, status=503)
    system.start_worker()
    done = await finished(tenant, made["id"], within=240)
    elapsed = time.monotonic() - started
    assert done["status"] == "completed"
    assert await check_campaign(system.sessions, system.provider, made["id"], prefix) == []
    figures = await stats(tenant, made["id"])
    counts = figures["counts"]
    assert counts["sent"] + counts["failed"] == recipients, figures
    # only sends cut off by the SIGKILL (delivery_unknown) or whose answer was lost may fail:
    # neither is resent, since the provider may have taken it
    for reason in figures["reasons"]["failed"]:
        assert reason.startswith(("delivery_unknown", "no answer from the provider")), figures
    refused = [r.status for r in system.provider.requests if r.status and r.status >= 400]
    assert refused.count(429) == 10 and refused.count(503) >= 1  # met, and outlived
    print(f"{recipients} recipients in {elapsed:.1f} s with the faults; {counts}")


async def test_a_campaign_created_while_the_worker_is_down_starts_when_it_returns(
    system: System,
) -> None:
    tenant = await system.new_tenant()
    instance = await number_with_templates(tenant, system.provider)
    prefix = await audience(system.sessions, tenant.id, 5, "depois")
    system.kill_worker()
    try:
        made = await create(tenant, campaign_body(instance, "depois", throughput=50))
        client = await connect(system.settings)
        with pytest.raises(RPCError):  # nothing has reached Temporal yet
            await client.get_workflow_handle(made["workflow_id"]).describe()
    finally:
        system.start_worker()
    done = await finished(tenant, made["id"], within=60)
    assert done["status"] == "completed"
    assert sum(provider_successes(system.provider, prefix).values()) == 5
    assert await check_campaign(system.sessions, system.provider, made["id"], prefix) == []


async def test_the_tier_stops_the_campaign_until_the_window_reopens(system: System) -> None:
    tenant = await system.new_tenant()
    instance = await number_with_templates(tenant, system.provider, messaging_tier=5)
    prefix = await audience(system.sessions, tenant.id, 8, "tier")
    made = await create(tenant, campaign_body(instance, "tier", throughput=50))
    waiting = await eventually(
        lambda: campaign(tenant, made["id"]), lambda c: c["status"] == "waiting_tier", within=60
    )
    assert "tier" in waiting["status_reason"]
    assert sum(provider_successes(system.provider, prefix).values()) == 5
    done = await finished(tenant, made["id"], within=60)
    assert done["status"] == "completed"
    assert await check_campaign(system.sessions, system.provider, made["id"], prefix) == []
    times = sorted(
        r.time
        for r in system.provider.requests
        if str((r.json or {}).get("to", "")).startswith(prefix)
    )
    assert len(times) == 8 and times[5] - times[0] >= TIER_WINDOW * 0.9
