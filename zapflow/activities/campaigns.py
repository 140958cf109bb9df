"""A campaign's activities: snapshot its audience, send one batch of recipients (paced, each
through the idempotent send path), and finish it. The services own every state change
(the services/campaigns package); these only sequence them around the provider calls."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from zapflow.activities.messages import DELIVERY_UNKNOWN, MessageActivities, error_dict
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.errors import Unprocessable
from zapflow.models import (
    Campaign,
    CampaignStatus,
    Template,
    WhatsAppInstance,
    utc_now,
)
from zapflow.services import campaigns, templates
from zapflow.services.number_pace import BURST_TOLERANCE, NumberPace, number_rate
from zapflow.whatsapp.errors import ProviderError
from zapflow.workflows.inputs import CampaignBatchInput, CampaignBatchResult, CampaignFinishInput

PAIR_RATE_LIMITED = 131056  # too many messages to this one user: defer that recipient only
THROTTLED = {130429, 80007}  # the number's throughput, the account's rate limit
UNAVAILABLE_WAIT = 2.0  # seconds before a batch after an outage, when no Retry-After came
PAIR_DEFER = timedelta(seconds=60)
BATCH_SECONDS = 10  # a batch holds about this many seconds of sends at its pace
MAX_BATCH = 1000
CONCURRENCY = 8  # sends in flight at once within a batch
MAX_CHUNK = 25
MAX_BLOCK = 200  # recipients queued per transaction, ahead of the claims


@dataclass(frozen=True)
class _Sent:
    """One recipient's turn in a batch: what happened (``sent``, ``failed``, ``throttled``, ...),
    what to record, and how long the provider asked to wait."""

    kind: str
    outcome: campaigns.Outcome
    wait: float = 0.0


HALTING = {"throttled", "unavailable", "stopped"}  # the rest of the batch waits for the next


class Pacer:
    """The campaign's own pace: slots ``1 / rate`` seconds apart, taken in call order; a caller
    late by less than ``BURST_TOLERANCE`` still gets the slot it missed (as the number's pace
    does, services/number_pace.py), so a stall of the stream costs no sends."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / max(rate, 0.1)
        self._clock = clock
        self._next = clock()

    def take(self) -> float:
        """The next slot: the seconds until it (0: due, or missed and taken now)."""
        now = self._clock()
        slot = max(self._next, now - BURST_TOLERANCE)
        self._next = slot + self._interval
        return max(0.0, slot - now)

    async def wait(self) -> None:
        if (seconds := self.take()) > 0:
            await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def heartbeating(every: float = 2.0) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class CampaignActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        sender: MessageActivities,
        settings: Settings,
        pace: NumberPace,
    ) -> None:
        self.sessions = sessions
        self._messages = sender
        self.pace = pace
        self._tier_window = timedelta(seconds=settings.campaign_tier_window_seconds)

    @activity.defn
    async def snapshot(self, input: CampaignBatchInput) -> int:
        async with transaction(self.sessions) as session:
            return await campaigns.snapshot(session, uuid.UUID(input.campaign_id))

    @activity.defn
    async def snapshot_when_due(self, input: CampaignBatchInput) -> float:
        async with transaction(self.sessions) as session:
            return await campaigns.snapshot_when_due(session, uuid.UUID(input.campaign_id))

    @activity.defn
    async def finish(self, input: CampaignFinishInput) -> None:
        async with transaction(self.sessions) as session:
            await campaigns.finish(session, uuid.UUID(input.campaign_id), input.cancelled)

    @activity.defn
    async def send_batch(self, input: CampaignBatchInput) -> CampaignBatchResult:
        campaign_id = uuid.UUID(input.campaign_id)
        async with transaction(self.sessions) as session:
            plan = await self._plan(session, campaign_id, input)
        if isinstance(plan, CampaignBatchResult):
            return plan
        campaign = plan[0]
        async with heartbeating():
            outcomes = await _Stream(self, *plan, _rate(input, campaign)).run()
        async with transaction(self.sessions) as session:
            current = await session.get(Campaign, campaign_id)
            assert current is not None
            await campaigns.announce(session, current)
        waits = [o.wait for o in outcomes if o.wait]
        kinds = Counter(o.kind for o in outcomes)
        return CampaignBatchResult(
            sent=kinds["sent"],
            failed=kinds["failed"],
            throughput=campaign.throughput,
            throttled=kinds["throttled"] > 0,
            wait_seconds=max(waits, default=UNAVAILABLE_WAIT if kinds["unavailable"] else 0.0),
        )

    async def send_one(self, prepared: campaigns.Prepared, halted: bool) -> _Sent:
        if prepared.outcome == "delivery_unknown":
            error = {"message": DELIVERY_UNKNOWN, "code": "delivery_unknown"}
            return _Sent("failed", campaigns.Outcome(prepared, "failed", error=error))
        if prepared.job is None:
            return _Sent(prepared.outcome or "skipped", campaigns.Outcome(prepared, "none"))
        if halted:  # claimed, never tried: pending again for a later batch
            return _Sent("unsent", campaigns.Outcome(prepared, "released"))
        try:
            result = await self._messages.provider_send(prepared.job)
        except ProviderError as exc:
            return _refused(prepared, exc)
        return _Sent("sent", campaigns.Outcome(prepared, "sent", result.provider_message_id))

    async def _plan(
        self, session: AsyncSession, campaign_id: uuid.UUID, input: CampaignBatchInput
    ) -> CampaignBatchResult | tuple[Campaign, Template | None, WhatsAppInstance, list[int]]:
        """What this batch sends (and the number's throughput), or why it sends nothing (paused,
        tier used up, outside business hours, done)."""
        campaign = await session.get(Campaign, campaign_id, with_for_update=True)
        assert campaign is not None
        if campaign.status == CampaignStatus.CANCELLED:
            return CampaignBatchResult(cancelled=True)
        if campaign.status == CampaignStatus.PAUSED:
            return CampaignBatchResult(paused=True)
        instance = await session.get(WhatsAppInstance, campaign.instance_id)
        assert instance is not None
        template = None
        if "template" in campaign.message:
            spec = campaign.message["template"]
            try:
                template = await templates.find_template(
                    session, campaign.company_id, instance.id, spec["name"], spec["language"]
                )
                templates.check_usable(template)
            except Unprocessable as exc:  # paused or disabled by Meta meanwhile: hold on
                await campaigns.set_status(session, campaign, CampaignStatus.PAUSED, exc.message)
                return CampaignBatchResult(paused=True)
        room, reopens = await campaigns.tier_room(session, instance, self._tier_window)
        if room == 0:
            reason = "the number's messaging tier is used up for the rolling window"
            await campaigns.set_status(session, campaign, CampaignStatus.WAITING_TIER, reason)
            wait = (reopens - utc_now()).total_seconds() if reopens else 60.0
            return CampaignBatchResult(throughput=campaign.throughput, wait_seconds=max(wait, 0.5))
        closed = await campaigns.hours_wait(session, campaign)
        if closed > 0:
            return CampaignBatchResult(throughput=campaign.throughput, wait_seconds=closed)
        size = min(MAX_BATCH, max(10, int(_rate(input, campaign) * BATCH_SECONDS)))
        due = await campaigns.due_recipients(session, campaign.id, min(size, room or size))
        if not due.recipient_ids:
            if due.next_deferred is None:
                return CampaignBatchResult(done=True)
            wait = (due.next_deferred - utc_now()).total_seconds()
            return CampaignBatchResult(throughput=campaign.throughput, wait_seconds=max(wait, 0.5))
        if campaign.status == CampaignStatus.WAITING_TIER:
            await campaigns.set_status(session, campaign, CampaignStatus.RUNNING)
        return campaign, template, instance, due.recipient_ids


class _Stream:
    """One batch's sends as a paced stream. Its recipients' messages are queued (``pending``) a
    block of about a second of sends at a time, a block or two ahead; claimed a chunk of about
    an eighth of a second at a time just ahead of the senders (one transaction each: what a
    SIGKILL can leave claimed and unsent, failed ``delivery_unknown``, stays that small); and
    their outcomes recorded a chunk at a time. A throttled, unavailable or stopped send halts
    the stream: the claimed messages not sent yet go back to ``pending``."""

    def __init__(
        self,
        activities: CampaignActivities,
        campaign: Campaign,
        template: Template | None,
        instance: WhatsAppInstance,
        recipient_ids: list[int],
        rate: float,
    ) -> None:
        self._a, self._campaign, self._template, self._instance = (
            activities, campaign, template, instance,
        )  # fmt: skip
        self._ids = recipient_ids
        self._size = _chunk_size(rate)
        self._block = min(MAX_BLOCK, max(self._size, int(rate)))
        self._claimed: asyncio.Queue[campaigns.Prepared | None] = asyncio.Queue(self._size)
        self._progress = asyncio.Condition()  # how far the queueing and the claims are
        self._queued = self._claiming = 0
        self._sent: list[_Sent] = []
        self._kinds: Counter[str] = Counter()
        self._unrecorded: list[campaigns.Outcome] = []
        self._recording = asyncio.Lock()
        self._pacer = Pacer(rate)

    async def run(self) -> list[_Sent]:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._queue())
            group.create_task(self._claim())
            for _ in range(CONCURRENCY):
                group.create_task(self._send())
        await self._record()
        return self._sent

    def _halted(self) -> bool:
        return any(self._kinds[k] for k in HALTING)

    def _claims_past(self, index: int) -> bool:
        return self._claiming >= index

    def _queued_past(self, index: int) -> bool:
        return self._queued >= index

    async def _queue(self) -> None:
        try:
            # the first block a chunk only: the batch's first send waits for no more
            starts = [0, *range(self._size, len(self._ids), self._block)]
            for start, end in zip(starts, [*starts[1:], len(self._ids)], strict=True):
                async with self._progress:  # at most a block ahead of the claims
                    await self._progress.wait_for(partial(self._claims_past, start - self._block))
                if self._halted():
                    break
                block = self._ids[start:end]
                async with transaction(self._a.sessions) as session:
                    await campaigns.queue_messages(
                        session, self._campaign, self._template, self._instance, block
                    )
                async with self._progress:
                    self._queued = start + len(block)
                    self._progress.notify_all()
        finally:
            async with self._progress:
                self._queued = len(self._ids)  # halted: the claims stop too
                self._progress.notify_all()

    async def _claim(self) -> None:
        try:
            for start in range(0, len(self._ids), self._size):
                chunk = self._ids[start : start + self._size]
                async with self._progress:
                    self._claiming = start
                    self._progress.notify_all()
                    await self._progress.wait_for(partial(self._queued_past, start + len(chunk)))
                if self._halted():
                    break
                async with transaction(self._a.sessions) as session:
                    prepared = await campaigns.claim(session, self._campaign, chunk)
                for one in prepared:
                    await self._claimed.put(one)  # waits while a chunk is ahead of the sends
        finally:
            async with self._progress:
                self._claiming = len(self._ids)  # done or halted: the queueing stops waiting
                self._progress.notify_all()
        for _ in range(CONCURRENCY):
            await self._claimed.put(None)

    async def _send(self) -> None:
        number = number_rate(self._instance.settings)
        while True:
            if not self._halted():  # the slot first: a claimed message waits for no slot
                await self._pacer.wait()  # the campaign's own pace, then the number's shared one
            if (prepared := await self._claimed.get()) is None:
                break
            if prepared.job is not None and not self._halted():
                await asyncio.sleep(await self._a.pace.take(self._campaign.instance_id, number))
            one = await self._a.send_one(prepared, self._halted())
            self._sent.append(one)
            self._kinds[one.kind] += 1
            self._unrecorded.append(one.outcome)
            if len(self._unrecorded) >= self._size:
                await self._record()

    async def _record(self) -> None:
        async with self._recording:
            batch = self._unrecorded[:]
            del self._unrecorded[:]
            if batch:
                async with transaction(self._a.sessions) as session:
                    await campaigns.record(session, batch)


def _rate(input: CampaignBatchInput, campaign: Campaign) -> float:
    """The pace the workflow asks for (slowed down after throttling), never above the
    campaign's."""
    return min(input.rate, campaign.throughput) if input.rate else campaign.throughput


def _chunk_size(rate: float) -> int:
    """Recipients claimed (and recorded) per transaction: about an eighth of a second of sends,
    so a pause stops the sends within a quarter of a second (a chunk claimed, one more being
    claimed) and a SIGKILL leaves few claimed messages unsent (they fail ``delivery_unknown``)."""
    return max(1, min(MAX_CHUNK, round(rate / 8)))


def _refused(prepared: campaigns.Prepared, exc: ProviderError) -> _Sent:
    error = error_dict(exc)
    if _code(exc) == PAIR_RATE_LIMITED:
        later = utc_now() + PAIR_DEFER
        return _Sent(
            "deferred", campaigns.Outcome(prepared, "released", error=error, defer_until=later)
        )
    if exc.retryable:
        # throttling (130429 or a 429) slows the campaign down; an outage (5xx, no answer)
        # only makes it wait: its pace was not the cause
        kind = "throttled" if _throttled(exc) else "unavailable"
        return _Sent(
            kind, campaigns.Outcome(prepared, "released", error=error), exc.retry_after or 0.0
        )
    return _Sent("failed", campaigns.Outcome(prepared, "failed", error=error))


def _throttled(exc: ProviderError) -> bool:
    return exc.status_code == 429 or _code(exc) in THROTTLED


def _code(exc: ProviderError) -> int | None:
    try:
        return int(exc.code) if exc.code is not None else None
    except (TypeError, ValueError):
        return None
