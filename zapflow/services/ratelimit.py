"""Rate limiting: sliding-window counters in Redis, several buckets per request (an API key's
and its company's, an instance's and its company's), and caps on concurrent event streams.

Two fixed one-minute windows, the previous one weighted by how much of it still overlaps the
sliding minute: one Lua call per event-loop turn whatever the number of buckets and requests
(one command and one reply, cheaper for the API than a pipeline of three per bucket), memory
per bucket bounded, accurate to a few percent; atomic, so API processes sharing a bucket count
exactly. When Redis is unreachable requests are let through (the API keeps answering; the
README says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

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


# Per bucket (its current and previous window's keys): count the request in the current one
# (which lapses after two windows) and read the previous one; one command, one flat reply.
_HIT = """
local out = {}
for i = 1, #KEYS, 2 do
  local current = redis.call('INCR', KEYS[i])
  if current == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  out[#out + 1] = current
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
end
return out
"""
_HIT_SHA = hashlib.sha1(_HIT.encode()).hexdigest()


async def _evalsha(redis: Redis, keys: list[str]) -> list[int]:
    """``_HIT`` by its digest (the script's text travels only when Redis does not hold it yet:
    after a restart or a SCRIPT FLUSH)."""
    try:
        return await redis.execute_command(
            "EVALSHA", _HIT_SHA, len(keys), *keys, WINDOW_SECONDS * 2
        )
    except NoScriptError:
        return await redis.eval(_HIT, len(keys), *keys, WINDOW_SECONDS * 2)


# The hits of one event-loop turn, per loop and Redis client, counted in one call of ``_HIT``
# (it takes any number of buckets): under load the requests a turn starts share one round trip,
# which was most of the limiter's cost (redis-py's command path and the socket write: 9-16 % of
# a webhook's or a cached read's API samples). Still atomic, so processes count exactly.
Turn = tuple[asyncio.AbstractEventLoop, Redis]
_TURNS: dict[Turn, list[tuple[list[str], asyncio.Future[list[int]]]]] = {}
_FLUSHING: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references


async def _flush(turn: Turn) -> None:
    waiting = _TURNS.pop(turn)
    try:
        replies = await _evalsha(turn[1], [key for keys, _ in waiting for key in keys])
    except BaseException as error:  # every waiter learns it, or it would wait forever
        for _, future in waiting:
            if future.done():
                continue
            if isinstance(error, Exception):
                future.set_exception(error)
            else:
                future.cancel()
        if not isinstance(error, Exception):
            raise
        return
    start = 0
    for keys, future in waiting:
        if not future.done():  # else its request was cancelled meanwhile
            future.set_result(replies[start : start + len(keys)])
        start += len(keys)


def _start_flush(turn: Turn) -> None:
    task = turn[0].create_task(_flush(turn))
    _FLUSHING.add(task)
    task.add_done_callback(_FLUSHING.discard)


async def _count(redis: Redis, keys: list[str]) -> list[int]:
    """The ``_HIT`` replies for ``keys``, from this loop turn's call."""
    loop = asyncio.get_running_loop()
    waiting = _TURNS.get((loop, redis))
    if waiting is None:
        waiting = _TURNS[(loop, redis)] = []
        loop.call_soon(_start_flush, (loop, redis))
    future: asyncio.Future[list[int]] = loop.create_future()
    waiting.append((keys, future))
    return await future


async def hit(redis: Redis, group: str, buckets: Sequence[Bucket]) -> RateLimitState | None:
    """Count one request of ``group`` in every bucket; the state of the tightest (the first
    one over its limit, else the one with the fewest requests left); None when Redis cannot
    tell."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    elapsed = now - window * WINDOW_SECONDS
    keys = []
    for bucket in buckets:
        prefix = f"{KEY_PREFIX}{bucket.subject}:{group}:"
        keys += [f"{prefix}{window}", f"{prefix}{window - 1}"]
    try:
        replies = await _count(redis, keys)
    except (RedisError, OSError):
        return None
    overlap = 1 - elapsed / WINDOW_SECONDS
    reset = max(1, math.ceil(WINDOW_SECONDS - elapsed))
    states = []
    for index, bucket in enumerate(buckets):
        current, previous = replies[2 * index : 2 * index + 2]
        used = previous * overlap + current
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
