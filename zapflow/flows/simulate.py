"""The simulator: runs a flow through the real engine with effects that only record, feeding it
scripted customer replies. Nothing is sent and the CRM is not touched.

A simulation runs in the API process on a tenant's flow, so it is bounded: at most
``MAX_SIMULATION_STEPS`` steps (waits take no time here, so a wait loop would otherwise never
end), values within the value bounds, and ``simulate_bounded`` runs it on a worker thread with
its own event loop, two at a time per process, answering ``SimulationTooLong`` after
``SIMULATION_SECONDS``: the API's event loop never runs a flow.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import anyio

from zapflow.flows import limits
from zapflow.flows.engine import (
    SIMULATION_LIMITS,
    WAITING,
    FlowEngine,
    Outgoing,
    RunState,
    StepFailed,
)
from zapflow.flows.language import FlowDefinition

SAMPLE_CONTACT: dict[str, Any] = {
    "name": "Test contact", "phone_number": "+5511999990000", "email": None, "tags": [],
    "custom_fields": {},
}  # fmt: skip


class _RepliesExhausted(Exception):
    """The flow waits for a reply the script does not have: the simulation stops there."""


class SimulationTooLong(Exception):
    """The simulation did not end within ``SIMULATION_SECONDS``."""


# simulations of one API process at a time: the others wait their turn, off the event loop
_SIMULATORS = anyio.CapacityLimiter(2)


@dataclass
class SimulationResult:
    status: str  # completed | failed | waiting (it needs more replies)
    current_node: str | None
    transcript: list[dict[str, Any]]
    variables: dict[str, Any]
    sent: list[dict[str, Any]]
    error: str | None = None


@dataclass
class RecordingEffects:
    """``replies``: the customer's answers in order; ``None`` plays an ask's timeout.
    ``http_responses``: node id → the response an ``http_request`` node gets (else it fails)."""

    replies: list[str | None]
    http_responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    deals: int = 0

    async def send(self, node_id: str, message: Outgoing) -> None:
        self.sent.append({"node": node_id, **message.public()})

    async def sleep(self, node_id: str, seconds: float) -> None:
        return None

    async def receive(self, node_id: str, within: float | None) -> str | None:
        if not self.replies:
            raise _RepliesExhausted(node_id)
        reply = self.replies.pop(0)
        if reply is None and within is None:
            raise StepFailed("a scripted timeout (null) for an ask without a timeout")
        return reply

    async def act(self, node_id: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action == "create_deal":
            self.deals += 1
            return {"deal_id": f"simulated-deal-{self.deals}"}
        if action == "update_contact":
            return {"contact": params}
        return {}

    async def http(self, node_id: str, request: dict[str, Any]) -> dict[str, Any]:
        if node_id not in self.http_responses:
            raise StepFailed("not called in a simulation (give http_responses for this node)")
        return self.http_responses[node_id]

    async def ai_reply(self, node_id: str, instructions: str | None) -> str:
        raise StepFailed("the AI agent is not called in a simulation")

    async def checkpoint(self, state: RunState) -> None:
        return None


async def simulate(
    flow: FlowDefinition,
    replies: list[str | None],
    *,
    contact: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    http_responses: dict[str, dict[str, Any]] | None = None,
) -> SimulationResult:
    effects = RecordingEffects(list(replies), dict(http_responses or {}))
    state = RunState.begin(flow, {**SAMPLE_CONTACT, **(contact or {})}, variables)
    try:
        await FlowEngine(flow, effects, SIMULATION_LIMITS, interactive=True, numbered=True).run(
            state
        )
    except _RepliesExhausted:
        state.status = WAITING
    return SimulationResult(
        status=state.status,
        current_node=state.current,
        transcript=state.transcript,
        variables=state.variables,
        sent=effects.sent,
        error=state.error,
    )


async def simulate_bounded(
    flow: FlowDefinition, replies: list[str | None], **given: Any
) -> SimulationResult:
    """``simulate`` on a worker thread, or ``SimulationTooLong``. A simulation that overruns
    goes on in its thread until its step limit ends it; the caller does not wait for it."""

    def run() -> SimulationResult:
        return asyncio.run(simulate(flow, replies, **given))

    try:
        with anyio.fail_after(limits.SIMULATION_SECONDS):
            return await anyio.to_thread.run_sync(run, abandon_on_cancel=True, limiter=_SIMULATORS)
    except TimeoutError:
        raise SimulationTooLong() from None
