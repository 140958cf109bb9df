from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.fixtures.provider_server import ProviderServer
from zapflow.whatsapp import CloudApiClient, EvolutionClient, OutboundMessage


async def test_unknown_routes_are_404_and_recorded(provider_server: ProviderServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{provider_server.url}/nothing/here")
    assert response.status_code == 404
    assert [(r.method, r.path, r.status) for r in provider_server.requests] == [
        ("GET", "/nothing/here", 404)
    ]


async def test_concurrent_sends_are_all_recorded_with_distinct_ids(
    provider_server: ProviderServer,
) -> None:
    async with httpx.AsyncClient() as http:
        cloud = CloudApiClient(provider_server.cloud_base_url, http, "1", "t")
        evo = EvolutionClient(provider_server.evolution_base_url, http, "i", "k")
        sends = [
            client.send(OutboundMessage(type="text", to=f"+55119000000{n:02d}", text=str(n)))
            for n in range(20)
            for client in (cloud, evo)
        ]
        results = await asyncio.gather(*sends)
    assert len({r.provider_message_id for r in results}) == 40
    assert len(await provider_server.wait_for_requests(40)) == 40


async def test_reset_cuts_pending_delays_short(provider_server: ProviderServer) -> None:
    provider_server.delay_next(1, seconds=30)
    async with httpx.AsyncClient() as http:
        cloud = CloudApiClient(provider_server.cloud_base_url, http, "1", "t")
        started = time.monotonic()
        send = asyncio.create_task(cloud.send(OutboundMessage(type="text", to="+551190", text="x")))
        await provider_server.wait_for_requests(1)
        provider_server.reset()
        await send
    assert time.monotonic() - started < 10


async def test_wait_for_requests_times_out(provider_server: ProviderServer) -> None:
    with pytest.raises(TimeoutError, match="got 0 of 1 requests"):
        await provider_server.wait_for_requests(1, within=0.05)
