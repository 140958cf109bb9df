"""One Redis reader per company stream, shared by all of this process's SSE clients of it.

A reader per client would hold a Redis connection per open stream (blocking XREAD): a few hundred
agents would exhaust the client's connection pool, and with it the rate limiter and the cache.
Here one task per company reads its stream and hands each entry to every subscriber's queue. A
subscriber resuming after ``Last-Event-ID`` subscribes first, then reads what it missed straight
from the stream, then takes from its queue what is newer: nothing missed, nothing twice. A
subscriber too slow to keep up is dropped (its client reconnects with Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

BLOCK_MS = 4_000  # under the client's 5 s socket timeout, so a quiet stream is not an error
RETRY_SECONDS = 1.0
QUEUE_SIZE = 2_000
BATCH = 500

Entry = tuple[str, bytes]  # (stream entry id, payload)
# (entry id, fields) pairs of a stream, as the client returns them (RESP2, decode_responses=False)
StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


def entry_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class Subscriber:
    """Entries in arrival order; ``None`` ends them (the subscriber fell behind)."""

    queue: asyncio.Queue[Entry | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, entry: Entry) -> bool:
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            return False
        return True


@dataclass
class _Reader:
    subscribers: set[Subscriber] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)  # its position is known


class StreamHub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._readers: dict[str, _Reader] = {}

    @contextlib.asynccontextmanager
    async def subscribe(self, key: str) -> AsyncIterator[Subscriber]:
        """Entries added to ``key`` from now on (once the stream's position is known)."""
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = _Reader()
            reader.task = asyncio.create_task(self._read(key, reader), name=f"stream {key}")
        subscriber = Subscriber()
        reader.subscribers.add(subscriber)
        try:
            await reader.started.wait()
            yield subscriber
        finally:
            reader.subscribers.discard(subscriber)
            if not reader.subscribers and self._readers.get(key) is reader:
                del self._readers[key]
                assert reader.task is not None
                reader.task.cancel()

    async def missed(self, key: str, after: str) -> AsyncIterator[Entry]:
        """What the stream holds after ``after``, read directly (a resuming client's gap)."""
        cursor = after
        while True:
            try:
                batches = await self._xread({key: cursor}, block=None)
            except (RedisError, OSError):
                await asyncio.sleep(RETRY_SECONDS)
                continue
            entries = batches[0][1] if batches else []
            for entry_id, fields in entries:
                cursor = entry_id.decode()
                yield cursor, fields[b"payload"]
            if len(entries) < BATCH:
                return

    async def _read(self, key: str, reader: _Reader) -> None:
        cursor = await self._newest(key)
        reader.started.set()
        while True:
            try:
                batches = await self._xread({key: cursor}, block=BLOCK_MS)
            except (RedisError, OSError):
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for _, entries in batches:
                for entry_id, fields in entries:
                    cursor = entry_id.decode()
                    self._fan_out(reader, (cursor, fields[b"payload"]))

    @staticmethod
    def _fan_out(reader: _Reader, entry: Entry) -> None:
        for subscriber in list(reader.subscribers):
            if not subscriber.offer(entry):
                reader.subscribers.discard(subscriber)
                with contextlib.suppress(asyncio.QueueEmpty):
                    subscriber.queue.get_nowait()  # room for the end-of-stream mark
                subscriber.queue.put_nowait(None)

    async def _newest(self, key: str) -> str:
        """The id of the stream's newest entry ("0-0" if none), retried while Redis is away:
        reading from "$" instead would skip what arrives between two reads."""
        while True:
            try:
                newest = cast(StreamEntries, await self._redis.xrevrange(key, count=1))
            except (RedisError, OSError):
                await asyncio.sleep(RETRY_SECONDS)
                continue
            return newest[0][0].decode() if newest else "0-0"

    async def _xread(
        self, streams: dict[str, str], block: int | None
    ) -> list[tuple[bytes, StreamEntries]]:
        found = await self._redis.xread(streams, block=block, count=BATCH)  # type: ignore[arg-type]
        return cast(list[tuple[bytes, StreamEntries]], found or [])
