"""The Temporal floor of the pipeline scenario: the least a per-conversation workflow on the same
embedded Temporal costs per message, measured beside zapflow in the same run (issue 15).

``FloorWorkflow`` is one conversation: each message arrives as a signal (signal-with-start, or a
plain signal to the open workflow), and each batch of waiting messages gets one no-op local
activity; nothing else (no database, no payloads beyond the message key). ``drive`` runs its
worker and the client that sends the signals in one process (the load generator's ``floor``
mode), so "floor worker + client" is that process's CPU, and Temporal's is the server's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

TASK_QUEUE = "bench-floor"
WORKFLOW_ID = "bench-floor-{run}-{n}"


@activity.defn(name="bench_floor_noop")
async def noop(keys: list[str]) -> int:
    """Stands for the persist; stamps the batch as processed in ``SEEN`` (same process)."""
    now = time.perf_counter()
    for key in keys:
        SEEN.setdefault(key, now)
    return len(keys)


SEEN: dict[str, float] = {}  # message key -> when its batch's local activity ran


async def run_batches(conversation: Any, local_activity: Any) -> None:
    """A floor conversation's life: wait for messages (``conversation.pending``), then give
    each batch of them one local activity, forever."""
    while True:
        await workflow.wait_condition(lambda: bool(conversation.pending))
        batch, conversation.pending = conversation.pending, []
        await workflow.execute_local_activity(
            local_activity, batch, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="BenchFloor")
class FloorWorkflow:
    """A conversation reduced to its skeleton: wait for messages, one local activity per batch."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    @workflow.signal
    def message(self, key: str) -> None:
        self.pending.append(key)

    @workflow.run
    async def run(self) -> None:
        await run_batches(self, noop)


class FloorDriver:
    """Signals ``FloorWorkflow`` s over ``conversations`` ids; runs their worker meanwhile."""

    def __init__(self, client: Client, run: str, conversations: int) -> None:
        self.client, self.run = client, run
        self.ids = [WORKFLOW_ID.format(run=run, n=n) for n in range(conversations)]

    def worker(self) -> Worker:
        """Configured like zapflow's (its workflow runner); everything else at the SDK defaults."""
        from zapflow.config import load_settings
        from zapflow.worker.main import workflow_runner

        return Worker(
            self.client,
            task_queue=TASK_QUEUE,
            workflows=[FloorWorkflow],
            activities=[noop],
            workflow_runner=workflow_runner(load_settings()),
        )

    async def signal(self, n: int, key: str, *, start: bool) -> None:
        """One message to conversation ``n``: signal-with-start, or a signal to the open one."""
        workflow_id = self.ids[n % len(self.ids)]
        if start:
            await self.client.start_workflow(
                FloorWorkflow.run,
                id=workflow_id,
                task_queue=TASK_QUEUE,
                start_signal="message",
                start_signal_args=[key],
            )
        else:
            await self.client.get_workflow_handle(workflow_id).signal(FloorWorkflow.message, key)

    async def stop(self) -> None:
        """Terminate this run's workflows (they never end by themselves)."""

        async def terminate(workflow_id: str) -> None:
            try:
                await self.client.get_workflow_handle(workflow_id).terminate("bench ended")
            except RPCError:  # never started, or already ended
                return

        for start in range(0, len(self.ids), 100):
            await asyncio.gather(*(terminate(i) for i in self.ids[start : start + 100]))


async def wait_seen(keys: list[str], deadline: float, progress: Callable[[int], None]) -> bool:
    """Until every key's batch ran its local activity, or ``deadline`` (perf_counter)."""
    while (seen := sum(1 for key in keys if key in SEEN)) < len(keys):
        if time.perf_counter() >= deadline:
            return False
        progress(seen)
        await asyncio.sleep(0.02)
    return True
