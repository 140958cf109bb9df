"""Many SSE clients on one API process (`zapflow api`, as deployed): while they are all
connected the API still answers other requests, and one inbound message reaches every client.
make test opens 100 streams; make test-faults 1,000."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.fixtures.app import Tenant
from tests.fixtures.system import api_subprocess
from tests.fixtures.traffic import cloud_delivery, cloud_text, create_cloud_instance, post_cloud
from zapflow.config import Settings

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def api_process(settings: Settings) -> Iterator[tuple[str, psutil.Process]]:
    # one key holds every stream here: the caps per key and company are other tests' subject
    caps = {"ZAPFLOW_STREAMS_PER_KEY": "2000", "ZAPFLOW_STREAMS_PER_COMPANY": "2000"}
    with api_subprocess(settings, **caps) as running:
        yield running


async def _listen(client: httpx.AsyncClient, connected: asyncio.Event, wanted: str) -> float:
    """Connect, then return when the event naming ``wanted`` arrives (its monotonic time)."""
    async with client.stream("GET", "/api/v1/stream", timeout=None) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == ": live":  # subscribed: the message sent after this reaches the stream
                connected.set()
            elif line.startswith("data:") and wanted in line:
                return time.monotonic()
    raise AssertionError("the stream ended")


@pytest.mark.parametrize(
    "streams",
    [pytest.param(100, id="100"), pytest.param(1000, id="1000", marks=pytest.mark.faults)],
)
async def test_many_streams_do_not_stall_the_api(
    api_process: tuple[str, psutil.Process], tenant: Tenant, streams: int
) -> None:
    url, process = api_process
    rss_before = process.memory_info().rss
    instance = await create_cloud_instance(tenant)
    wanted = f"wamid.{uuid.uuid4().hex}"
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        connected = [asyncio.Event() for _ in range(streams)]
        listeners = [asyncio.create_task(_listen(client, event, wanted)) for event in connected]
        try:
            try:
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in connected)), 120)
            except TimeoutError:
                failed = [t.exception() for t in listeners if t.done() and t.exception()]
                raise AssertionError(
                    f"{sum(e.is_set() for e in connected)} of {streams} streams connected in"
                    f" 120 s; listeners that failed: {failed[:3]!r}"
                ) from None
            started = time.monotonic()
            for path in ("/healthz", "/api/v1/conversations", "/api/v1/contacts"):
                answer = await client.get(path, timeout=30)
                assert answer.status_code == 200, answer.text  # the API still answers
            answered = time.monotonic() - started
            delivery = cloud_delivery(
                instance["phone_number_id"],
                cloud_text("5511933332222", wanted, "oi", int(time.time())),
            )
            sent = time.monotonic()
            assert (await post_cloud(client, instance["webhook_url"], delivery)).status_code == 200
            arrivals = await asyncio.wait_for(asyncio.gather(*listeners), 120)
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
    latencies = sorted(t - sent for t in arrivals)
    print(
        f"{streams} streams: 3 requests answered in {answered:.2f} s; message.created reached"
        f" all in {latencies[-1]:.2f} s (p50 {latencies[len(latencies) // 2]:.2f} s);"
        f" API RSS +{(process.memory_info().rss - rss_before) / 2**20:.0f} MiB"
    )
    assert len(arrivals) == streams
