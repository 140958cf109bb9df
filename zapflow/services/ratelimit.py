"""Rate limiting: sliding-window counters in Redis, several buckets per request (an API key's
and its company's, an instance's and its company's), and caps on concurrent event streams.

Two fixed one-minute windows, the previous one weighted by how much of it still overlaps the
sliding minute: one round trip per request whatever the number of buckets, memory per bucket
bounded, accurate to a few percent. When Redis is unreachable requests are let through (the API
keeps answering; the README says so).
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

WINDOW_SECONDS = 60
KEY_PREFIX = "zapflow:ratelimit:"

RATE_LIMITED = Counter(
    "zapflow_rate_limited_total", "Requests refused by the rate limiter", ["group"]
)


@dataclass(frozen=True)
class Bucket:
    """A counter: ``subject`` names whose (``key:<id>``, ``company:<id>``), ``scope`` says so in
    answers (``key``, ``company``, ``instance``)."""

    scope: str
    subject: str
    limit: int


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_seconds: int
    allowed: bool
    scope: str = "key"

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


async def hit(redis: Redis, group: str, buckets: Sequence[Bucket]) -> RateLimitState | None:
    """Count one request of ``group`` in every bucket; the state of the tightest (the first
    one over its limit, else the one with the fewest requests left); None when Redis cannot
    tell."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    elapsed = now - window * WINDOW_SECONDS
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                current_key = f"{KEY_PREFIX}{bucket.subject}:{group}:{window}"
                pipe.incr(current_key)
                pipe.expire(current_key, WINDOW_SECONDS * 2)
                pipe.get(f"{KEY_PREFIX}{bucket.subject}:{group}:{window - 1}")
            replies = await pipe.execute()
    except (RedisError, OSError):
        return None
    overlap = 1 - elapsed / WINDOW_SECONDS
    reset = max(1, math.ceil(WINDOW_SECONDS - elapsed))
    states = []
    for index, bucket in enumerate(buckets):
        current, _, previous = replies[3 * index : 3 * index + 3]
        used = int(previous or 0) * overlap + int(current)
        remaining = max(0, math.floor(bucket.limit - used))
        states.append(
            RateLimitState(bucket.limit, remaining, reset, used <= bucket.limit, bucket.scope)
        )
    tightest = min(states, key=lambda state: (state.allowed, state.remaining))
    if not tightest.allowed:
        RATE_LIMITED.labels(group).inc()
    return tightest


# --- concurrent event streams -------------------------------------------------------------------

STREAMS_PREFIX = "zapflow:streams:"
SLOT_SECONDS = 30  # a slot its stream stops renewing (its process died) frees itself by then
# Per bucket (a sorted set of slots scored by when they lapse): drop the lapsed, refuse if one
# is full (its 1-based position), else take a slot in every bucket. Atomic: two streams opening
# at once cannot both take the last slot.
_TAKE = """
local now, lapses, slot = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, lapses, slot)
  redis.call('EXPIRE', key, ARGV[#ARGV])
end
return 0
"""


@dataclass(frozen=True)
class StreamSlot:
    """One open stream's place in its buckets; renewed while it lives, released when it ends."""

    redis: Redis
    keys: tuple[str, ...]
    member: str

    async def renew(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in self.keys:
                    pipe.zadd(key, {self.member: time.time() + SLOT_SECONDS}, xx=True)
                await pipe.execute()

    async def release(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in self.keys:
                    pipe.zrem(key, self.member)
                await pipe.execute()


async def take_stream_slot(
    redis: Redis, buckets: Sequence[Bucket]
) -> tuple[StreamSlot | None, Bucket | None]:
    """A slot in every bucket (``limit``: streams open at once), or the bucket that is full.
    (None, None) when Redis cannot tell: the stream opens (availability first, as above)."""
    keys = tuple(f"{STREAMS_PREFIX}{bucket.subject}" for bucket in buckets)
    member = uuid.uuid4().hex
    now = time.time()
    args: list[str | float] = [now, now + SLOT_SECONDS, member]
    args += [*(b.limit for b in buckets), SLOT_SECONDS * 2]
    try:
        full = int(await redis.eval(_TAKE, len(keys), *keys, *args))
    except (RedisError, OSError):
        return None, None
    if full:
        return None, buckets[full - 1]
    return StreamSlot(redis, keys, member), None
