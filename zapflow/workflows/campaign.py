"""CampaignWorkflow: one per campaign. Waits for its schedule, has the audience snapshotted,
then sends in batches (an activity each, on the campaigns' own task queue so conversations'
replies never wait behind a broadcast), at the pace the provider allows: a throttled batch
halves the pace, a clean one raises it back toward the campaign's throughput; the messaging
tier and deferred recipients make it wait. Pause, resume and cancel are signals (the API also
sets the row, which each batch reads). An edit before the start (``reschedule``, a signal
carrying nothing) wakes the wait for the schedule, and the row, read by an activity, says when
it is due (patch ``campaign-edit``). It continues as new every ``BATCHES_PER_RUN`` batches.
Its history holds ids and counts only, never a message's text.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.campaigns import CampaignActivities
    from zapflow.workflows.inputs import (
        CampaignBatchInput,
        CampaignBatchResult,
        CampaignFinishInput,
        CampaignInput,
    )
    from zapflow.workflows.policies import (
        CAMPAIGN_BATCH_HEARTBEAT,
        CAMPAIGN_BATCH_TIMEOUT,
        DATABASE_RETRY,
        DATABASE_TIMEOUT,
    )

BATCHES_PER_RUN = 200
MIN_RATE = 1.0
THROTTLE_WAIT = 2.0  # seconds, when the provider gave no Retry-After
EDIT_PATCH = "campaign-edit"  # the start follows the row's schedule, edits included


@workflow.defn
class CampaignWorkflow:
    def __init__(self) -> None:
        self._paused = False
        self._cancelled = False
        self._rescheduled = False

    @workflow.signal
    def pause(self) -> None:
        self._paused = True

    @workflow.signal
    def resume(self) -> None:
        self._paused = False

    @workflow.signal
    def cancel(self) -> None:
        self._cancelled = True

    @workflow.signal
    def reschedule(self) -> None:
        """The row is ``scheduled`` (so not paused), maybe edited: look at it again."""
        self._paused = False
        self._rescheduled = True

    @workflow.run
    async def run(self, input: CampaignInput) -> None:
        self._paused = self._paused or input.paused
        if not input.started:
            await self._start(input)
        rate = input.rate
        for _ in range(BATCHES_PER_RUN):
            await workflow.wait_condition(lambda: not self._paused or self._cancelled)
            if self._cancelled:
                break
            result = await self._batch(input.campaign_id, rate)
            if result.cancelled:
                self._cancelled = True
            if result.done or result.cancelled:
                break
            self._paused = self._paused or result.paused
            rate = _next_rate(rate or result.throughput, result)
            wait = max(result.wait_seconds, THROTTLE_WAIT if result.throttled else 0.0)
            if wait > 0:
                await self._sleep(wait)
        else:
            workflow.continue_as_new(
                dataclasses.replace(input, started=True, paused=self._paused, rate=rate)
            )
        await workflow.execute_activity_method(
            CampaignActivities.finish,
            CampaignFinishInput(input.campaign_id, self._cancelled),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )

    async def _batch(self, campaign_id: str, rate: float) -> CampaignBatchResult:
        return await workflow.execute_activity_method(
            CampaignActivities.send_batch,
            CampaignBatchInput(campaign_id, rate),
            start_to_close_timeout=CAMPAIGN_BATCH_TIMEOUT,
            heartbeat_timeout=CAMPAIGN_BATCH_HEARTBEAT,
            retry_policy=DATABASE_RETRY,
        )

    async def _start(self, input: CampaignInput) -> None:
        """Wait for the schedule the workflow started with (an edit cuts it short), then have
        the audience snapshotted once the row's schedule has come."""
        if input.scheduled_at:
            delay = (datetime.fromisoformat(input.scheduled_at) - workflow.now()).total_seconds()
            if delay > 0:
                await self._sleep(delay, lambda: self._rescheduled)
        if not workflow.patched(EDIT_PATCH):
            if not self._cancelled:
                await self._snapshot(CampaignActivities.snapshot, input.campaign_id)
            return
        while not self._cancelled:
            self._rescheduled = False
            wait = await self._snapshot(CampaignActivities.snapshot_when_due, input.campaign_id)
            if wait <= 0:
                return
            await self._sleep(wait, lambda: self._rescheduled)

    async def _snapshot(self, activity: Callable[..., Awaitable[float]], campaign_id: str) -> float:
        return await workflow.execute_activity_method(
            activity,
            CampaignBatchInput(campaign_id, 0),
            start_to_close_timeout=DATABASE_TIMEOUT * 4,
            retry_policy=DATABASE_RETRY,
        )

    async def _sleep(self, seconds: float, wake: Callable[[], bool] = lambda: False) -> None:
        """A durable timer a cancel (or ``wake``) cuts short."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._cancelled or wake(), timeout=timedelta(seconds=seconds)
            )


def _next_rate(rate: float, result: CampaignBatchResult) -> float:
    """Halve the pace on throttling; a clean batch brings it back by half again."""
    if result.throttled:
        return max(MIN_RATE, rate / 2)
    return min(float(result.throughput), rate * 1.5)
