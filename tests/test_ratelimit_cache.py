"""Rate limiting per API key and route group, and the two-level cache's invalidation."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis
from sqlalchemy import update

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import eventually
from zapflow.cache import Cache
from zapflow.config import Settings
from zapflow.db import transaction
from zapflow.devstack import EmbeddedStack
from zapflow.models import Company
from zapflow.services import ratelimit


async def _set_limits(sessions, tenant: Tenant, limits: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as session:
        await session.execute(
            update(Company)
            .where(Company.id == uuid.UUID(tenant.id))
            .values(settings={"rate_limits": limits})
        )


async def test_a_key_over_its_limit_gets_429_with_retry_after(tenant: Tenant, sessions) -> None:  # type: ignore[no-untyped-def]
    await _set_limits(sessions, tenant, {"instances": 3})
    answers = [await tenant.client.get("/api/v1/instances") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    refused = answers[3]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "3"
    other_group = await tenant.client.get(f"/api/v1/conversations/{uuid.uuid4()}/messages")
    assert other_group.status_code == 404  # counted in its own group, not refused


async def test_the_api_answers_without_redis(
    stack: EmbeddedStack,
    tenant: Tenant,
    sessions,  # type: ignore[no-untyped-def]
) -> None:
    await _set_limits(sessions, tenant, {"instances": 1})
    await asyncio.to_thread(stack.redis.stop)
    try:
        answers = [await tenant.client.get("/api/v1/instances") for _ in range(3)]
    finally:
        await asyncio.to_thread(stack.start_redis)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "RateLimit-Limit" not in answers[0].headers


@pytest.fixture
async def two_processes(settings: Settings):  # type: ignore[no-untyped-def]
    """Two caches on their own Redis connections, as two API processes would have."""
    clients = [Redis.from_url(settings.redis_url) for _ in range(2)]
    caches = [Cache(client) for client in clients]
    listeners = [asyncio.create_task(cache.listen()) for cache in caches]
    await asyncio.sleep(0.2)  # subscribed
    yield caches
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    for client in clients:
        await client.aclose()


async def test_a_write_in_one_process_is_seen_by_the_next_read_in_another(two_processes) -> None:  # type: ignore[no-untyped-def]
    first, second = two_processes
    key = f"contact:{uuid.uuid4()}"
    row = {"name": "Maria"}

    async def load() -> dict[str, str]:
        return dict(row)

    assert await first.get(key, 60, load) == {"name": "Maria"}
    assert await second.get(key, 60, load) == {"name": "Maria"}  # L2, then L1
    row["name"] = "Maria Souza"  # the write commits ...
    await first.invalidate(key)  # ... then invalidates
    assert await first.get(key, 60, load) == {"name": "Maria Souza"}
    await eventually(lambda: second.get(key, 60, load), lambda v: v == {"name": "Maria Souza"}, 5)


async def test_a_read_racing_a_write_does_not_cache_the_old_value(two_processes) -> None:  # type: ignore[no-untyped-def]
    reader, writer = two_processes
    key = f"contact:{uuid.uuid4()}"
    row = {"name": "old"}
    loaded = asyncio.Event()
    release = asyncio.Event()

    async def slow_load() -> dict[str, str]:
        value = dict(row)  # read before the write commits
        loaded.set()
        await release.wait()
        return value

    async def load() -> dict[str, str]:
        return dict(row)

    racing = asyncio.create_task(reader.get(key, 60, slow_load))
    await loaded.wait()
    row["name"] = "new"
    await writer.invalidate(key)
    await asyncio.sleep(0.2)  # the reader's process hears of the invalidation
    release.set()
    assert await racing == {"name": "old"}  # that read was already under way
    assert await reader.get(key, 60, load) == {"name": "new"}
    assert await writer.get(key, 60, load) == {"name": "new"}


async def test_the_hits_of_one_loop_turn_share_one_call_and_count_exactly(
    settings: Settings,
) -> None:
    """services/ratelimit.py: requests started in one turn share one Lua call; each still gets
    its own count (the fourth and fifth over a limit of three are refused)."""
    redis = Redis.from_url(settings.redis_url)
    bucket = ratelimit.Bucket("key", f"test:{uuid.uuid4()}", 3)
    try:
        before = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
        outcomes = await asyncio.gather(*(ratelimit.hit(redis, "g", [bucket]) for _ in range(5)))
        after = (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
    finally:
        await redis.aclose()
    assert [(o.allowed, o.remaining) for o in outcomes if o] == [
        (True, 2), (True, 1), (True, 0), (False, 0), (False, 0)
    ]  # fmt: skip
    assert after - before == 1
