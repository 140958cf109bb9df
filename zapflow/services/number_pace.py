"""A WhatsApp number's send schedule, shared in Redis by every process that sends from it.

Meta meters throughput per phone number (80 msg/s by default), whatever sends: two campaigns
on one number share it, and conversational replies count too. Each send takes the number's
next free slot (one Lua call on Redis's clock, so processes agree): the slot is ``next``, or
``now - BURST_TOLERANCE`` when the schedule fell further behind, and ``next`` moves on by
``1 / rate`` (the generic cell rate algorithm). The tolerance lets a send late by a stall (a
slow claim, a batch's boundary, a pause of the process) use the slots it missed instead of
losing them, which kept a campaign configured at 80 msg/s near 77: any second holds at most
``rate * (1 + BURST_TOLERANCE)`` sends, the average stays the rate. A campaign's send sleeps
until its slot; a conversational reply takes its slot without waiting, so it is never held
back, and the campaigns' later slots move back by as much: replies have priority, campaigns
yield.

When Redis cannot answer, a send goes at once (campaigns still keep their own pace): pacing
is a courtesy to the provider, whose 130429 answers slow a campaign down anyway.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

KEY_PREFIX = "zapflow:pace:"
DEFAULT_RATE = 80
BURST_TOLERANCE = 0.25  # seconds of missed slots a late send may still use

# KEYS[1]: the number's next free slot (microseconds, Redis's clock); ARGV[1]: the interval,
# ARGV[2]: the tolerance, in microseconds. Returns the microseconds until the slot taken
# (negative: a missed slot, taken now).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = math.max(now - tonumber(ARGV[2]), tonumber(redis.call('GET', KEYS[1]) or now))
redis.call('SET', KEYS[1], string.format('%d', slot + tonumber(ARGV[1])), 'PX', 60000)
return slot - now
"""


def number_rate(settings: dict[str, object] | None) -> int:
    """The number's throughput (``settings.throughput``, 1 to 1,000; 80 by default)."""
    found = (settings or {}).get("throughput")
    return found if isinstance(found, int) and 1 <= found <= 1000 else DEFAULT_RATE


class NumberPace:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def take(self, instance_id: uuid.UUID, rate: float) -> float:
        """Take the number's next slot; the seconds to wait for it (0 when Redis fails)."""
        interval = max(1, int(1_000_000 / max(rate, 0.1)))
        tolerance = int(BURST_TOLERANCE * 1_000_000)
        key = f"{KEY_PREFIX}{instance_id}"
        try:
            waited = await self._redis.eval(_TAKE, 1, key, interval, tolerance)
        except (RedisError, OSError):
            return 0.0
        return max(0, int(waited)) / 1_000_000
