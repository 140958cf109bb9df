"""The pacing schedules (the campaign's own ``Pacer``, the number's ``NumberPace`` in Redis): a
send late by a short stall still gets the slots it missed, so the rate stays the configured
one; after a long stall (a pause, an idle number) only the burst tolerance is made up.
Slots are checked on a stepped clock and on Redis's stored schedule, never on wall time."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from zapflow.activities.campaigns import Pacer
from zapflow.devstack import EmbeddedStack
from zapflow.services.number_pace import BURST_TOLERANCE, KEY_PREFIX, NumberPace


def _sends(pacer: Pacer, clock: list[float], until: float, stalls: list[float]) -> int:
    """Sends made before ``until``, each when its slot comes (the sender sleeps until it), or
    at the end of a stall of ``STALL`` seconds starting at each of ``stalls``."""
    sent = 0
    while True:
        clock[0] += pacer.take()
        for start in stalls:
            if start <= clock[0] < start + STALL:
                clock[0] = start + STALL
        if clock[0] >= until:
            return sent
        sent += 1


STALL = 0.2


def test_a_stall_shorter_than_the_tolerance_costs_no_slot() -> None:
    clock = [0.0]
    pacer = Pacer(rate=64, clock=lambda: clock[0])
    # five stalls of 0.2 s in 10 s: slots taken at max(now, next) sent 585 of the 640
    assert _sends(pacer, clock, 10.0, [1.0, 3.0, 5.0, 7.0, 9.0]) == 640


def test_a_long_stall_makes_up_only_the_tolerance() -> None:
    clock = [0.0]
    pacer = Pacer(rate=10, clock=lambda: clock[0])
    assert [pacer.take() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    clock[0] = 30.0  # paused for half a minute: not 300 sends at once
    waits = [pacer.take() for _ in range(5)]
    due_now = int(BURST_TOLERANCE * 10) + 1
    assert waits[:due_now] == [0.0] * due_now
    assert waits[due_now] > 0


async def test_the_numbers_schedule_keeps_missed_slots_within_the_tolerance(
    stack: EmbeddedStack,
) -> None:
    redis = Redis.from_url(stack.redis_url)
    pace, number = NumberPace(redis), uuid.uuid4()
    key = f"{KEY_PREFIX}{number}"
    now = await _redis_now(redis)
    # the schedule 0.1 s behind (a stalled sender): the missed slot is taken, without waiting
    await redis.set(key, now - 100_000)
    assert await pace.take(number, 10) == 0.0
    assert int(await redis.get(key)) == now  # the old pacer moved it to its clock + 0.1 s
    # an hour behind (an idle number): made up only as far as the tolerance
    await redis.set(key, now - 3_600_000_000)
    before = await _redis_now(redis)
    assert await pace.take(number, 10) == 0.0
    after = await _redis_now(redis)
    made_up = int(BURST_TOLERANCE * 1_000_000) - 100_000  # the slot taken, one interval on
    assert before - made_up <= int(await redis.get(key)) <= after - made_up
    await redis.aclose()


async def _redis_now(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1_000_000 + int(micros)
