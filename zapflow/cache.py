"""Two-level read cache: an in-process L1 (seconds) over Redis L2 (minutes), kept honest by writes.

A write invalidates after its commit: the L2 entry is deleted and the key is published on a channel
that every process listens to, so their L1 copies go too. Values are JSON. If Redis is down, reads
fall through to the loader (Postgres) and an invalidation clears this process's L1 only; other
processes' copies then live out their TTL. A value is never served longer than its ``ttl`` after
it was loaded, whichever level holds it: an L1 copy taken from L2 expires with the L2 entry, so
the bound a caller states (30 s for API keys, SECURITY.md) holds when Redis misses invalidations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.db import SessionFactory, after_commit, attach

log = logging.getLogger(__name__)

INVALIDATION_CHANNEL = "zapflow:cache:invalidate"
KEY_PREFIX = "zapflow:cache:"
L1_TTL_SECONDS = 30.0
L1_MAX_ENTRIES = 10_000
# An invalidated key holds a tombstone for a while, and values are only ever added with SET NX:
# a reader that loaded the old row just before the write's commit cannot put it back.
TOMBSTONE = b"\x00invalidated"
TOMBSTONE_SECONDS = 10
_MISSING = object()

CACHE_LOOKUPS = Counter(
    "zapflow_cache_lookups_total", "Cache lookups by cache and outcome", ["cache", "outcome"]
)

Loader = Callable[[], Awaitable[Any]]
CACHE = "cache"  # a session's info: the process's cache, invalidated after its commit


def invalidate_on_commit(sessions: SessionFactory, cache: Cache) -> None:
    """Sessions of ``sessions`` invalidate ``cache`` for what ``forget`` was told."""
    attach(sessions, **{CACHE: cache})


def forget(session: AsyncSession, *keys: str) -> None:
    """Invalidate ``keys`` once ``session`` commits: earlier, a concurrent read could cache the
    old value anew. A session without a cache (a script's) has nothing to invalidate."""
    cache: Cache | None = session.info.get(CACHE)
    if cache is not None and keys:
        after_commit(session, lambda: cache.invalidate(*keys))


def cache_name(key: str) -> str:
    """The metric label of a key: its first segment (``company``, ``contact``, ...)."""
    return key.split(":", 1)[0]


class Cache:
    def __init__(
        self, redis: Redis, l1_ttl: float = L1_TTL_SECONDS, l1_size: int = L1_MAX_ENTRIES
    ) -> None:
        self._redis = redis
        self._l1_ttl = l1_ttl
        self._l1_size = l1_size
        self._l1: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._epoch = 0  # bumped by every invalidation this process hears of

    async def get(self, key: str, ttl: int, loader: Loader) -> Any:
        """The cached JSON value of ``key``, else ``loader()``'s (stored for ``ttl`` seconds)."""
        value = self._l1_get(key)
        if value is not _MISSING:
            CACHE_LOOKUPS.labels(cache_name(key), "l1_hit").inc()
            return value
        value, left = await self._l2_get(key)
        if value is not _MISSING:
            CACHE_LOOKUPS.labels(cache_name(key), "l2_hit").inc()
        else:
            CACHE_LOOKUPS.labels(cache_name(key), "miss").inc()
            epoch = self._epoch
            value = await loader()
            await self._l2_set(key, value, ttl)
            if epoch != self._epoch:  # something was invalidated meanwhile: maybe this
                return value
            left = ttl
        self._l1_set(key, value, min(self._l1_ttl, left))
        return value

    async def invalidate(self, *keys: str) -> None:
        self._forget(*keys)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(KEY_PREFIX + key, TOMBSTONE, ex=TOMBSTONE_SECONDS)
                    pipe.publish(INVALIDATION_CHANNEL, key)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("cache invalidation reached this process only (Redis: %s)", exc)

    async def listen(self) -> None:
        """Evict L1 entries other processes invalidated; reconnects until cancelled."""
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(INVALIDATION_CHANNEL)
                    # what changed while we were not listening is unknown: start clean
                    self._l1.clear()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._forget(message["data"].decode())
            except (RedisError, OSError):
                self._l1.clear()
                await asyncio.sleep(1)

    def _forget(self, *keys: str) -> None:
        self._epoch += 1
        for key in keys:
            self._l1.pop(key, None)

    def _l1_get(self, key: str) -> Any:
        entry = self._l1.get(key)
        if entry is None or entry[0] < time.monotonic():
            return _MISSING
        self._l1.move_to_end(key)
        return entry[1]

    def _l1_set(self, key: str, value: Any, seconds: float) -> None:
        self._l1[key] = (time.monotonic() + seconds, value)
        self._l1.move_to_end(key)
        while len(self._l1) > self._l1_size:
            self._l1.popitem(last=False)

    async def _l2_get(self, key: str) -> tuple[Any, float]:
        """The value and the seconds it has left in L2 (``_MISSING`` if none)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(KEY_PREFIX + key)
                pipe.pttl(KEY_PREFIX + key)
                raw, left_ms = await pipe.execute()
        except (RedisError, OSError):
            return _MISSING, 0.0
        if raw is None or raw == TOMBSTONE or left_ms <= 0:
            return _MISSING, 0.0
        return orjson.loads(raw), left_ms / 1000

    async def _l2_set(self, key: str, value: Any, ttl: int) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.set(KEY_PREFIX + key, orjson.dumps(value), ex=ttl, nx=True)
