"""Faults under load, each followed by the ledger check (tests/fixtures/ledger.py): nothing that
zapflow acknowledged is lost or duplicated, whatever fails while traffic flows.

Each scenario runs on a system of its own (stack, API, worker process), so stopping its Postgres,
Redis or Temporal hurts no other test. ``make test`` runs the short versions (a few seconds of
outage, a little traffic); ``make test-faults`` the long ones (30 s outages, more traffic).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.fixtures.app import start_worker
from tests.fixtures.ledger import Ledger, LedgerReport, ReconnectingListener
from tests.fixtures.system import System, running_system, scale
from tests.fixtures.traffic import eventually


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    async with running_system(tmp_path_factory.mktemp("faults")) as running:
        yield running


@pytest.fixture
async def ledger(system: System) -> AsyncIterator[Ledger]:
    system.provider.reset()
    tenant = await system.new_tenant()
    opened = await Ledger(tenant, system.provider, system.sessions).open()
    yield opened
    await opened.close()
    system.provider.reset()


OUTAGE = scale(3.0, 30.0)
LONG_ENOUGH = pytest.mark.timeout(900)  # the long versions take minutes


def rounds_for(outage: float) -> int:
    """Traffic lasting longer than the outage, so it flows before, during and after it."""
    return 6 if outage < 10 else 40


def clean(report: LedgerReport) -> None:
    print(report)  # the figures, shown with -s or on failure
    assert not report.problems, "\n".join(report.problems[:50])
    assert report.inbound_acknowledged > 0 and report.outbound_accepted > 0


async def during(ledger: Ledger, rounds: int, fault: asyncio.Future[None]) -> None:
    """Run the traffic and the fault together (the fault starts once traffic flows); traffic
    goes on, a few rounds at a time, until the fault is over."""

    async def traffic() -> None:
        await ledger.run(rounds)
        while not fault.done():
            await ledger.run(3)

    await asyncio.gather(traffic(), fault)


async def flowing(ledger: Ledger, at_least: int = 4) -> None:
    async def acknowledged() -> int:
        return len(ledger.inbound)

    await eventually(acknowledged, lambda n: n >= at_least, within=60)


async def test_the_ledger_is_clean_without_faults(ledger: Ledger) -> None:
    await ledger.run(4)
    clean(await ledger.check())


@LONG_ENOUGH
@pytest.mark.parametrize("outage", OUTAGE)
async def test_temporal_stopped_and_restarted(
    system: System, ledger: Ledger, outage: float
) -> None:
    async def fault() -> None:
        await flowing(ledger)
        await system.restart_temporal(outage)

    await during(ledger, rounds_for(outage), asyncio.ensure_future(fault()))
    clean(await ledger.check(within=120))


@LONG_ENOUGH
@pytest.mark.parametrize("outage", OUTAGE)
async def test_postgres_restarted(system: System, ledger: Ledger, outage: float) -> None:
    """Webhooks answer 503 meanwhile; the senders retry as providers do."""

    async def fault() -> None:
        await flowing(ledger)
        await system.restart_postgres(outage)

    await during(ledger, rounds_for(outage), asyncio.ensure_future(fault()))
    report = await ledger.check(within=120)
    clean(report)
    assert report.retried > 0  # the outage was seen by the senders


@LONG_ENOUGH
@pytest.mark.parametrize("outage", OUTAGE)
async def test_redis_stopped(system: System, ledger: Ledger, outage: float) -> None:
    """The API keeps answering; an SSE client reconnecting with Last-Event-ID misses nothing
    that was stored."""
    async with ReconnectingListener(ledger.tenant.client) as listener:

        async def fault() -> None:
            await flowing(ledger)
            await listener.wait_for("message.created", lambda e: len(e) > 0, within=30)
            await asyncio.to_thread(system.stack.redis.stop)
            await listener.drop()  # the client goes away while Redis is down...
            await asyncio.sleep(outage)  # the outage itself
            await asyncio.to_thread(system.stack.start_redis)
            listener.resume()  # ...and comes back with Last-Event-ID once it is up

        await during(ledger, rounds_for(outage), asyncio.ensure_future(fault()))
        report = await ledger.check(listener=listener, within=120)
    clean(report)
    assert report.retried == 0  # no request failed: the API answered throughout


@LONG_ENOUGH
@pytest.mark.parametrize("kill_count", scale(1, 3))
async def test_worker_killed_mid_activity_and_restarted(
    system: System, ledger: Ledger, kill_count: float
) -> None:
    """SIGKILL while sends are in the provider's hands; a reply then went out once or failed
    as delivery unknown, never twice."""

    async def fault() -> None:
        for _ in range(int(kill_count)):
            await flowing(ledger, len(ledger.inbound) + 4)
            before = len(system.provider.requests)
            # in the provider's hands, answered before the send times out: killed meanwhile
            system.provider.delay_next(3, seconds=system.settings.provider_timeout_seconds - 1)
            await system.provider.wait_for_requests(before + 1, within=60)
            system.kill_worker()
            system.start_worker()

    await during(ledger, 6 * int(kill_count), asyncio.ensure_future(fault()))
    clean(await ledger.check(within=120))


@LONG_ENOUGH
@pytest.mark.parametrize("rounds", scale(8, 40))
async def test_two_workers_share_the_inbox_and_one_is_killed(
    system: System, ledger: Ledger, rounds: float
) -> None:
    """Two worker processes (two relays claiming rows from one inbox, two pollers of one task
    queue); one is SIGKILLed mid-load and stays down: its claimed rows go to the other when the
    claim expires, its cached workflows are replayed there. Nothing lost, nothing twice. The
    second runs its workflows as production does, outside the sandbox the tests use elsewhere:
    runs move between the two modes."""
    with (system.stack.logs_dir / "worker-2.log").open("ab") as log:
        env = {**system.worker_env, "ZAPFLOW_WORKFLOW_SANDBOX": "false"}
        second = start_worker(system.settings, log, **env)
    try:

        async def fault() -> None:
            await flowing(ledger, 8)
            system.kill_worker()

        await during(ledger, int(rounds), asyncio.ensure_future(fault()))
        clean(await ledger.check(within=180))
    finally:
        second.kill()
        second.wait(10)
        system.start_worker()


@LONG_ENOUGH
@pytest.mark.parametrize(
    "failures",
    [
        pytest.param(6, id="short"),
        # replies wait in order behind a refused send: the send policy's backoff stays at
        # 10 s or less (policies.SEND_RETRY), so 40 refusals still clear within the check
        pytest.param(40, id="long", marks=pytest.mark.faults),
    ],
)
async def test_provider_answering_429_500_and_timeouts(
    system: System, ledger: Ledger, failures: float
) -> None:
    """Refusals are retried until the provider takes the message; a timeout (the provider may
    have taken it) is not resent blindly."""
    n = int(failures)
    system.provider.fail_next(n // 3, status=429, retry_after=1)
    system.provider.fail_next(n // 3, status=500)
    system.provider.fail_next(n // 3, status=503)
    system.provider.delay_next(n, seconds=0)  # answers in time first, then the slow ones
    system.provider.delay_next(2, seconds=system.settings.provider_timeout_seconds + 1)
    await ledger.run(rounds_for(failures))
    report = await ledger.check(within=120)
    clean(report)
    statuses = [r.status for r in system.provider.requests]
    assert {429, 500, 503} <= set(statuses)
    assert report.outbound_failed == 2  # the two whose answer was lost, each sent once


@LONG_ENOUGH
@pytest.mark.parametrize("rounds", scale(3, 20))
async def test_replay_storm(system: System, rounds: float) -> None:
    """Every webhook (messages and statuses) delivered 10 times, out of order, at once."""
    system.provider.reset()
    tenant = await system.new_tenant()
    storm = await Ledger(tenant, system.provider, system.sessions, copies=10).open()
    try:
        await storm.run(int(rounds), reply_every=1)
        report = await storm.check(within=120)
    finally:
        await storm.close()
    clean(report)
    assert report.deliveries_posted >= 10 * report.inbound_acknowledged
