"""The worker's own metrics, exported with the Temporal SDK's (same runtime, same Prometheus port):
activity outcomes by type and failure type, relay throughput, and the webhook → event latency."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor


class WorkerMetrics:
    def __init__(self, meter: MetricMeter) -> None:
        self.activity_outcomes = meter.create_counter(
            "zapflow_activity_outcomes", "Activity attempts by type, outcome and failure type"
        )
        self.relayed_events = meter.create_counter(
            "zapflow_relay_events", "Inbox events relayed, by kind"
        )
        self.relay_stores = meter.create_counter(
            "zapflow_relay_stores",
            "Conversations the relay stored before signalling, by outcome (stored; fallback: "
            "the pass's transaction failed and their workflows persist the rows)",
        )
        self.quiet_conversations = meter.create_counter(
            "zapflow_relay_quiet_conversations",
            "Conversations of a relay pass whose stored messages needed nothing from their "
            "workflow (no flow, AI answer or follow-up): not signalled",
        )
        self.message_latency = meter.create_histogram_float(
            "zapflow_message_event_latency",
            "Webhook receipt to the message.created event being published",
            unit="s",
        )


class ActivityOutcomeInterceptor(Interceptor):
    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountOutcomes(next, self._metrics)


class _CountOutcomes(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, metrics: WorkerMetrics) -> None:
        super().__init__(next)
        self._metrics = metrics

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        attributes = {"activity_type": activity.info().activity_type}
        try:
            result = await super().execute_activity(input)
        except BaseException as exc:
            failure = (
                exc.type if isinstance(exc, ApplicationError) and exc.type else type(exc).__name__
            )
            outcome = {**attributes, "outcome": "failed", "failure_type": failure}
            self._metrics.activity_outcomes.with_additional_attributes(outcome).add(1)
            raise
        outcome = {**attributes, "outcome": "completed", "failure_type": "none"}
        self._metrics.activity_outcomes.with_additional_attributes(outcome).add(1)
        return result


def _failure_type(exc: BaseException) -> str:
    if isinstance(exc, ApplicationError) and exc.type:
        return exc.type
    return type(exc).__name__
