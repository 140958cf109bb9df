"""A campaign's activities: snapshot its audience, send one batch of recipients (paced, each
through the idempotent send path), and finish it. The services own every state change
(the services/campaigns package); these only sequence them around the provider calls."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from zapflow.activities.messages import DELIVERY_UNKNOWN, MessageActivities, error_dict
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.errors import Unprocessable
from zapflow.models import (
    Campaign,
    CampaignStatus,
    RecipientStatus,
    Template,
    WhatsAppInstance,
    utc_now,
)
from zapflow.services import campaigns, messages, templates
from zapflow.services.number_pace import NumberPace, number_rate
from zapflow.whatsapp.errors import ProviderError
from zapflow.workflows.inputs import CampaignBatchInput, CampaignBatchResult, CampaignFinishInput

PAIR_RATE_LIMITED = 131056  # too many messages to this one user: defer that recipient only
THROTTLED = {130429, 80007}  # the number's throughput, the account's rate limit
UNAVAILABLE_WAIT = 2.0  # seconds before a batch after an outage, when no Retry-After came
PAIR_DEFER = timedelta(seconds=60)
BATCH_SECONDS = 10  # a batch holds about this many seconds of sends at its pace
MAX_BATCH = 1000
CONCURRENCY = 8  # sends in flight at once within a batch


class Pacer:
    """Spaces calls ``1 / rate`` seconds apart (slots are taken in call order)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / max(rate, 0.1)
        self._next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


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
        self._sessions = sessions
        self._messages = sender
        self._pace = pace
        self._tier_window = timedelta(seconds=settings.campaign_tier_window_seconds)

    @activity.defn
    async def snapshot(self, input: CampaignBatchInput) -> int:
        async with transaction(self._sessions) as session:
            return await campaigns.snapshot(session, uuid.UUID(input.campaign_id))

    @activity.defn
    async def snapshot_when_due(self, input: CampaignBatchInput) -> float:
        async with transaction(self._sessions) as session:
            return await campaigns.snapshot_when_due(session, uuid.UUID(input.campaign_id))

    @activity.defn
    async def finish(self, input: CampaignFinishInput) -> None:
        async with transaction(self._sessions) as session:
            await campaigns.finish(session, uuid.UUID(input.campaign_id), input.cancelled)

    @activity.defn
    async def send_batch(self, input: CampaignBatchInput) -> CampaignBatchResult:
        campaign_id = uuid.UUID(input.campaign_id)
        async with transaction(self._sessions) as session:
            plan = await self._plan(session, campaign_id, input)
        if isinstance(plan, CampaignBatchResult):
            return plan
        campaign, template, instance, recipient_ids = plan
        number = number_rate(instance.settings)
        async with transaction(self._sessions) as session:  # one transaction for the batch
            await campaigns.queue_messages(session, campaign, template, instance, recipient_ids)
        rate = _rate(input, campaign)
        outcomes: Counter[str] = Counter()
        waits: list[float] = []
        pacer = Pacer(rate)
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(recipient_id: int) -> None:
            async with slots:
                if outcomes["throttled"] or outcomes["unavailable"] or outcomes["stopped"]:
                    return  # slowed down or down at the provider, or paused: the rest waits
                await pacer.wait()  # the campaign's own pace, then the number's shared one
                await asyncio.sleep(await self._pace.take(campaign.instance_id, number))
                outcome, wait = await self._send_one(campaign, template, recipient_id)
                outcomes[outcome] += 1
                if wait:
                    waits.append(wait)

        async with heartbeating():
            await asyncio.gather(*(one(r) for r in recipient_ids))
        async with transaction(self._sessions) as session:
            current = await session.get(Campaign, campaign_id)
            assert current is not None
            await campaigns.announce(session, current)
        return CampaignBatchResult(
            sent=outcomes["sent"],
            failed=outcomes["failed"],
            throughput=campaign.throughput,
            throttled=outcomes["throttled"] > 0,
            wait_seconds=max(waits, default=UNAVAILABLE_WAIT if outcomes["unavailable"] else 0.0),
        )

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

    async def _send_one(
        self, campaign: Campaign, template: Template | None, recipient_id: int
    ) -> tuple[str, float]:
        async with transaction(self._sessions) as session:
            prepared = await campaigns.prepare(session, campaign, template, recipient_id)
        if prepared.outcome == "delivery_unknown":
            await self._failed(prepared, {"message": DELIVERY_UNKNOWN, "code": "delivery_unknown"})
            return "failed", 0.0
        if prepared.job is None:
            return prepared.outcome or "skipped", 0.0
        try:
            sent = await self._messages.provider_send(prepared.job)
        except ProviderError as exc:
            return await self._refused(prepared, exc)
        async with transaction(self._sessions) as session:
            assert prepared.message_id is not None
            await messages.record_sent(session, prepared.message_id, sent.provider_message_id)
            await campaigns.record_outcome(session, recipient_id, RecipientStatus.SENT)
        return "sent", 0.0

    async def _refused(self, prepared: campaigns.Prepared, exc: ProviderError) -> tuple[str, float]:
        assert prepared.message_id is not None
        error = error_dict(exc)
        if _code(exc) == PAIR_RATE_LIMITED:
            async with transaction(self._sessions) as session:
                await messages.release(session, prepared.message_id, error)
                await campaigns.record_outcome(
                    session, prepared.recipient_id, None, f"deferred: {exc.message}",
                    defer_until=utc_now() + PAIR_DEFER,
                )  # fmt: skip
            return "deferred", 0.0
        if exc.retryable:
            async with transaction(self._sessions) as session:
                await messages.release(session, prepared.message_id, error)
            # throttling (130429 or a 429) slows the campaign down; an outage (5xx, no answer)
            # only makes it wait: its pace was not the cause
            kind = "throttled" if _throttled(exc) else "unavailable"
            return kind, exc.retry_after or 0.0
        await self._failed(prepared, error)
        return "failed", 0.0

    async def _failed(self, prepared: campaigns.Prepared, error: dict[str, object]) -> None:
        assert prepared.message_id is not None
        reason = f"{error.get('code')}: {error.get('message')}" if error.get("code") else None
        async with transaction(self._sessions) as session:
            await messages.record_failed(session, prepared.message_id, error, attempts=1)
            await campaigns.record_outcome(
                session, prepared.recipient_id, RecipientStatus.FAILED,
                reason or str(error.get("message")),
            )  # fmt: skip


def _rate(input: CampaignBatchInput, campaign: Campaign) -> float:
    """The pace the workflow asks for (slowed down after throttling), never above the
    campaign's."""
    return min(input.rate, campaign.throughput) if input.rate else campaign.throughput


def _throttled(exc: ProviderError) -> bool:
    return exc.status_code == 429 or _code(exc) in THROTTLED


def _code(exc: ProviderError) -> int | None:
    try:
        return int(exc.code) if exc.code is not None else None
    except (TypeError, ValueError):
        return None
