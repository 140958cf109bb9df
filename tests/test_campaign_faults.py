"""A campaign through a worker SIGKILL and a provider outage, and through its number's messaging
tier, on a system of its own (stack, API, worker process): afterwards the campaign's ledger
check (tests/fixtures/campaigns.py) finds every recipient reached the provider exactly once, or
failed with a reason having reached it at most once.

Scaled for the shared 2-core machine: with a load average of 20-30 from other sessions when
this was written, sends ran at ~2.5/s, so 2,000 recipients would take ~15 minutes; here 120
recipients at up to 100 msg/s, a 3-second 503 outage plus
ten 429s (Meta's 130429), a SIGKILL after half; the tier test uses a 3-second window instead of
24 hours (``ZAPFLOW_CAMPAIGN_TIER_WINDOW_SECONDS``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

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
from tests.fixtures.system import System, running_system
from tests.fixtures.traffic import eventually

RECIPIENTS = 120
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


async def test_a_campaign_survives_a_sigkill_and_an_outage(system: System) -> None:
    tenant = await system.new_tenant()
    instance = await number_with_templates(tenant, system.provider)
    prefix = await audience(system.sessions, tenant.id, RECIPIENTS, "todos")
    started = time.monotonic()
    made = await create(tenant, campaign_body(instance, "todos", throughput=100))

    async def sent() -> int:
        return sum(provider_successes(system.provider, prefix).values())

    await eventually(sent, lambda n: n >= RECIPIENTS // 4, within=120)
    system.provider.fail_for(3.0, status=503)
    system.provider.fail_next(10, status=429)  # (#130429) Rate limit hit
    await eventually(sent, lambda n: n >= RECIPIENTS // 2, within=120)
    system.kill_worker()
    system.start_worker()
    done = await finished(tenant, made["id"], within=240)
    elapsed = time.monotonic() - started
    assert done["status"] == "completed"
    assert await check_campaign(system.sessions, system.provider, made["id"], prefix) == []
    figures = await stats(tenant, made["id"])
    counts = figures["counts"]
    assert counts["sent"] + counts["failed"] == RECIPIENTS, figures
    # only sends cut off by the SIGKILL (delivery_unknown) or whose answer was lost may fail:
    # neither is resent, since the provider may have taken it
    for reason in figures["reasons"]["failed"]:
        assert reason.startswith(("delivery_unknown", "no answer from the provider")), figures
    refused = [r for r in system.provider.requests if r.status is not None and r.status >= 400]
    assert len(refused) >= 10  # the outage and the 429s were met, and outlived
    print(f"{RECIPIENTS} recipients in {elapsed:.1f} s with the faults; {counts}")


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
