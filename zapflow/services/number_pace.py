"""A WhatsApp number's send schedule, shared in Redis by every process that sends from it.

Meta meters throughput per phone number (80 msg/s by default), whatever sends: two campaigns
on one number share it, and conversational replies count too. Each send takes the number's
next free slot (one Lua call: the slot is ``max(now, next)``, and ``next`` moves on by
``1 / rate``, on Redis's clock so processes agree). A campaign's send sleeps until its slot; a
conversational reply takes its slot without waiting, so it is never held back, and the
campaigns' later slots move back by as much: replies have priority, campaigns yield.

When Redis cannot answer, a send goes at once (campaigns still keep their own pace): pacing
is a courtesy to the provider, whose 130429 answers slow a campaign down anyway.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

KEY_PREFIX = "zapflow:pace:"
DEFAULT_RATE = 80

# KEYS[1]: the number's next free slot (microseconds, Redis's clock); ARGV[1]: the interval in
# microseconds. Returns the microseconds until the slot taken.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
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
        try:
            waited = await self._redis.eval(_TAKE, 1, f"{KEY_PREFIX}{instance_id}", interval)
        except (RedisError, OSError):
            return 0.0
        return int(waited) / 1_000_000
