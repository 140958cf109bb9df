"""What one tenant can take from the others: requests per key and per company, the operator's
maximum over a company's own limits, concurrent event streams, webhook floods and /readyz
floods (SECURITY.md, "Limits")."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.app import in_process_api, new_tenant, recorded_statements, served_api
from tests.fixtures.system import api_subprocess
from tests.fixtures.traffic import cloud_delivery, cloud_text, create_cloud_instance, eventually
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.devstack import free_port
from zapflow.services.auth import create_company

API = "/api/v1"


async def _agent_key(client: httpx.AsyncClient, name: str) -> str:
    created = await client.post(f"{API}/api-keys", json={"name": name, "role": "agent"})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


async def _company(sessions: SessionFactory, name: str) -> str:
    """A new company's admin key."""
    async with transaction(sessions) as session:
        _, key = await create_company(session, name)
    return key.plain


def _as(app: FastAPI, key: str) -> httpx.AsyncClient:
    """A client of the in-process ``app`` (its lifespan already running) with ``key``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://zapflow",
        headers={"Authorization": f"Bearer {key}"},
    )


async def test_a_companys_keys_share_one_bucket(
    settings: Settings, sessions: SessionFactory
) -> None:
    """Each request counts for its key and for its company: spreading requests over many keys
    does not get a company past its bucket, and another company's keys are not touched."""
    limited = settings.model_copy(update={"company_rate_limit_per_minute": 5})
    async with in_process_api(limited) as (app, _):
        async with _as(app, await _company(sessions, "Spread Co")) as admin:
            keys = [await _agent_key(admin, f"k{i}") for i in range(3)]
        statuses = []
        for key in keys:  # 6 requests of the tags group, 5 allowed to the company
            async with _as(app, key) as client:
                statuses += [(await client.get(f"{API}/tags")).status_code for _ in range(2)]
        assert statuses == [200] * 5 + [429], statuses  # each key used 2 of its 1,200
        async with _as(app, keys[-1]) as client:
            refused = await client.get(f"{API}/tags")
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["details"]["scope"] == "company"
        assert "this company" in error["message"] and refused.headers["Retry-After"]
        async with _as(app, await _company(sessions, "Other Co")) as client:
            assert (await client.get(f"{API}/tags")).status_code == 200
        async with _as(app, keys[0]) as client:  # another group: its own bucket
            assert (await client.get(f"{API}/users")).status_code == 200


async def test_an_admin_cannot_raise_its_limits_past_the_operators_maximum(
    settings: Settings, sessions: SessionFactory
) -> None:
    """422 naming the group over the maximum; up to it is fine; a limit stored before the
    operator lowered the maximum counts as the maximum."""
    key = await _company(sessions, "Greedy Co")
    capped = settings.model_copy(update={"rate_limit_max_per_minute": 50})
    async with in_process_api(capped, key) as (_, admin):
        over = await admin.patch(f"{API}/company", json={"settings": {"rate_limits": {"tags": 51}}})
        assert over.status_code == 422, over.text
        error = over.json()["error"]
        assert error["details"]["field"] == "settings.rate_limits.tags"
        assert "at most 50" in error["message"]
        at_max = {"settings": {"rate_limits": {"tags": 50, "default": 10}}}
        assert (await admin.patch(f"{API}/company", json=at_max)).status_code == 200
        assert (await admin.get(f"{API}/tags")).headers["RateLimit-Limit"] == "50"
    lowered = settings.model_copy(update={"rate_limit_max_per_minute": 20})
    async with in_process_api(lowered, key) as (_, admin):
        assert (await admin.get(f"{API}/tags")).headers["RateLimit-Limit"] == "20"


# --- concurrent event streams -------------------------------------------------------------------


@pytest.fixture
async def capped_streams(settings: Settings) -> AsyncIterator[str]:
    """An API serving streams with at most 2 per key and 3 per company."""
    capped = settings.model_copy(
        update={"api_port": free_port(), "streams_per_key": 2, "streams_per_company": 3}
    )
    async with served_api(capped) as url:
        yield url


class Stream:
    """An open event stream, held until closed."""

    def __init__(self, url: str, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        self._client = httpx.AsyncClient(base_url=url, headers=headers, timeout=None)
        self._opened: asyncio.Future[httpx.Response] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold())

    async def _hold(self) -> None:
        async with self._client.stream("GET", f"{API}/stream") as response:
            self._opened.set_result(response)
            if response.status_code == 200:
                async for _ in response.aiter_lines():
                    pass
            else:
                await response.aread()

    async def status(self) -> tuple[int, dict[str, object] | None]:
        response = await asyncio.wait_for(asyncio.shield(self._opened), 15)
        if response.status_code == 200:
            return 200, None
        await asyncio.wait_for(self._task, 15)
        return response.status_code, response.json()["error"]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()


async def test_streams_are_capped_per_key_and_per_company(
    capped_streams: str, sessions: SessionFactory
) -> None:
    """A third stream of one key, or a fourth of one company, is a 429 saying which; closing one
    frees its place."""
    url = capped_streams
    async with new_tenant(url, sessions, "Tabs Co") as tenant, new_tenant(url, sessions, "B") as b:
        first, second = await _agent_key(tenant.client, "a"), await _agent_key(tenant.client, "b")
        streams = [Stream(url, first), Stream(url, first)]
        try:
            assert [(await s.status())[0] for s in streams] == [200, 200]
            streams.append(Stream(url, first))
            status, error = await streams[-1].status()
            assert status == 429 and error is not None, error
            assert error["code"] == "rate_limited" and "this API key" in str(error["message"])
            streams.append(Stream(url, second))
            assert (await streams[-1].status())[0] == 200  # the company's third
            streams.append(Stream(url, second))
            status, error = await streams[-1].status()
            assert status == 429 and error is not None and "this company" in str(error["message"])
            streams.append(Stream(url, b.api_key))
            assert (await streams[-1].status())[0] == 200  # another company: its own caps
            await streams[0].close()

            async def reopened() -> int:
                stream = Stream(url, second)
                streams.append(stream)
                return (await stream.status())[0]

            await eventually(reopened, lambda status: status == 200, within=20)
        finally:
            for stream in streams:
                await stream.close()


# --- floods -------------------------------------------------------------------------------------

FLOOD_REQUESTS = 1_500
FLOOD_CONCURRENCY = 30
WEBHOOK_LIMIT = 200  # per minute, for the flooded instance (and its company's bucket)
READS = 300
DROPPED = 0  # a flood request whose connection was closed under it (counted, not an error)


def _percentiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


async def _reads(client: httpx.AsyncClient) -> tuple[list[float], Counter[int]]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    for _ in range(READS):
        started = time.perf_counter()
        response = await client.get(f"{API}/conversations", timeout=60)  # a loaded machine
        latencies.append(time.perf_counter() - started)
        statuses[response.status_code] += 1
    return latencies, statuses


async def _flood(client: httpx.AsyncClient, webhook_url: str, phone_number_id: str) -> Counter[int]:
    """Deliveries at one instance's URL without the app secret's signature (the URL alone
    leaked): within the bucket they cost a signature check (401), beyond it nothing (429)."""
    statuses: Counter[int] = Counter()
    pending = iter(range(FLOOD_REQUESTS))

    async def sender() -> None:
        for n in pending:
            delivery = cloud_delivery(
                phone_number_id, cloud_text("5511900000000", f"wamid.f{n}", "x", int(time.time()))
            )
            headers = {"x-hub-signature-256": "sha256=" + "0" * 64}
            try:
                response = await client.post(webhook_url, json=delivery, headers=headers)
            except httpx.TransportError:  # a kept-alive connection the server closed meanwhile
                statuses[DROPPED] += 1
                continue
            statuses[response.status_code] += 1

    await asyncio.gather(*(sender() for _ in range(FLOOD_CONCURRENCY)))
    return statuses


async def test_a_webhook_flood_at_one_tenant_leaves_the_others_api_working(
    settings: Settings, sessions: SessionFactory
) -> None:
    """`zapflow api` as deployed, one instance's webhook URL flooded (1,500 requests, 30 at a
    time) while another company reads its inbox: every read succeeds, and the flood beyond its
    instance's bucket is refused with 429 before its body is read. The other company's read
    latency with and without the flood, and the API's CPU per refused delivery, are printed
    (not asserted: the machine is shared)."""
    env = {"ZAPFLOW_WEBHOOK_RATE_LIMIT_PER_MINUTE": str(WEBHOOK_LIMIT)}
    with api_subprocess(settings, **env) as (url, process):
        async with (
            new_tenant(url, sessions, "Flooded Co") as flooded,
            new_tenant(url, sessions, "Quiet Co") as quiet,
        ):
            instance = await create_cloud_instance(flooded)
            quiet_latencies, quiet_statuses = await _reads(quiet.client)
            limits = httpx.Limits(max_connections=FLOOD_CONCURRENCY + 5)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as attacker:
                cpu_before = process.cpu_times()
                flood = asyncio.create_task(
                    _flood(attacker, instance["webhook_url"], instance["phone_number_id"])
                )
                loud_latencies, loud_statuses = await _reads(quiet.client)
                flood_statuses = await flood
                cpu = process.cpu_times()
    assert quiet_statuses == Counter({200: READS}) and loud_statuses == Counter({200: READS})
    assert set(flood_statuses) <= {401, 429, DROPPED}, flood_statuses
    # a flood shorter than a minute that crosses a minute's boundary gets at most the rest of
    # the previous minute's share on top (the sliding window weighs it down as time passes)
    assert flood_statuses[401] <= WEBHOOK_LIMIT * 2 and flood_statuses[429] > 0
    cpu_ms = ((cpu.user + cpu.system) - (cpu_before.user + cpu_before.system)) * 1000
    print(
        f"\nother tenant's GET /conversations, {READS} one at a time: alone"
        f" {_percentiles(quiet_latencies)}; during the flood {_percentiles(loud_latencies)};"
        f" flood answers {dict(flood_statuses)}; API CPU during the flood"
        f" {cpu_ms / (FLOOD_REQUESTS + READS):.2f} ms per request"
    )


async def test_a_readyz_flood_checks_the_components_once(settings: Settings) -> None:
    """Concurrent probes share one check of Postgres, Redis and Temporal, and a fresh result is
    reused for a second: 200 probes at once cost one query."""
    async with in_process_api(settings) as (app, client):
        with recorded_statements(app) as statements:
            answers = await asyncio.gather(*(client.get("/readyz") for _ in range(200)))
        assert {a.status_code for a in answers} == {200}
        assert {a.json()["status"] for a in answers} == {"ready"}
        assert sum("SELECT 1" in s for s in statements) == 1, statements
