"""Rate limiting per API key and route group: a sliding-window counter in Redis.

Two fixed one-minute windows, the previous one weighted by how much of it still overlaps the
sliding minute: one round trip per request, memory per key bounded, accurate to a few percent.
When Redis is unreachable requests are let through (the API keeps answering; the README says so).
"""

from __future__ import annotations

import math
import time
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
class RateLimitState:
    limit: int
    remaining: int
    reset_seconds: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


async def hit(redis: Redis, subject: str, group: str, limit: int) -> RateLimitState | None:
    """Count one request of ``subject`` in ``group``; None when Redis cannot tell."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    elapsed = now - window * WINDOW_SECONDS
    current_key = f"{KEY_PREFIX}{subject}:{group}:{window}"
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.incr(current_key)
            pipe.expire(current_key, WINDOW_SECONDS * 2)
            pipe.get(f"{KEY_PREFIX}{subject}:{group}:{window - 1}")
            current, _, previous = await pipe.execute()
    except (RedisError, OSError):
        return None
    overlap = 1 - elapsed / WINDOW_SECONDS
    used = int(previous or 0) * overlap + int(current)
    allowed = used <= limit
    if not allowed:
        RATE_LIMITED.labels(group).inc()
    return RateLimitState(
        limit=limit,
        remaining=max(0, math.floor(limit - used)),
        reset_seconds=max(1, math.ceil(WINDOW_SECONDS - elapsed)),
        allowed=allowed,
    )
