"""Flow runs: the ``flow_runs`` mirror of each FlowWorkflow. A run is made for a contact or an
audience member, started and cancelled through the inbox (``flow_start``/``flow_cancel`` rows
committed with it; the relay signals Temporal), begun with its version and contact, mirrored as
the workflow moves, and ended by the workflow, or here when it has none (never started, refused,
gone, or lost). ``flow_run.updated`` events announce each mirror and each end made here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, Table, Uuid, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Conflict, NotFound, Unprocessable
from zapflow.models import (
    Contact,
    Conversation,
    DeadLetter,
    DeadLetterKind,
    Flow,
    FlowRun,
    FlowRunStatus,
    FlowStatus,
    FlowVersion,
    InboxEventType,
    WhatsAppInstance,
    utc_now,
)
from zapflow.services import deals
from zapflow.services.events import Event, stage
from zapflow.services.inbox import store_flow_command
from zapflow.services.paging import newest_first
from zapflow.services.queries import get_scoped
from zapflow.temporal import run_workflow_id

ACTIVE = (FlowRunStatus.RUNNING, FlowRunStatus.WAITING)
FINISHED = {FlowRunStatus.COMPLETED, FlowRunStatus.FAILED, FlowRunStatus.CANCELLED}
ORPHAN_AGE = timedelta(minutes=1)
CONTACT_FIELDS = ("name", "phone_number", "email", "tags", "custom_fields")


async def get_run(session: AsyncSession, company_id: uuid.UUID, run_id: uuid.UUID) -> FlowRun:
    return await get_scoped(session, FlowRun, company_id, run_id)


async def page_runs(
    session: AsyncSession, flow: Flow, limit: int, cursor: str | None
) -> tuple[list[FlowRun], str | None]:
    query = select(FlowRun).where(
        col(FlowRun.company_id) == flow.company_id, col(FlowRun.flow_id) == flow.id
    )
    return await newest_first(session, query, FlowRun.started_at, FlowRun.id, limit, cursor)


async def runs_per_node(
    session: AsyncSession, flow: Flow
) -> list[tuple[int, str, FlowRunStatus, int]]:
    """(version, node id, run status, runs) for the flow's runs by the node they are at
    (active runs) or ended on: where customers are now and where they drop off."""
    query = (
        select(
            col(FlowRun.flow_version),
            col(FlowRun.current_node_id),
            col(FlowRun.status),
            func.count(),
        )
        .where(
            col(FlowRun.company_id) == flow.company_id,
            col(FlowRun.flow_id) == flow.id,
            col(FlowRun.current_node_id).is_not(None),
        )
        .group_by(col(FlowRun.flow_version), col(FlowRun.current_node_id), col(FlowRun.status))
        .order_by(col(FlowRun.flow_version), col(FlowRun.current_node_id))
    )
    rows = (await session.execute(query)).all()
    return [(v, str(n), FlowRunStatus(s), c) for v, n, s, c in rows]


async def _latest_conversation(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID
) -> Conversation:
    query = (
        select(Conversation)
        .where(
            col(Conversation.company_id) == company_id,
            col(Conversation.contact_id) == contact_id,
        )
        .order_by(col(Conversation.last_message_at).desc())
        .limit(1)
    )
    conversation = (await session.execute(query)).scalar_one_or_none()
    if conversation is None:
        raise Unprocessable(
            "contact_id: this contact has no conversation to run a flow in",
            details=[{"field": "body.contact_id", "message": "no conversation yet"}],
        )
    return conversation


def runnable_version(flow: Flow) -> int:
    if flow.status != FlowStatus.PUBLISHED or flow.current_version is None:
        raise Conflict("publish the flow before running it", code="flow_not_published")
    return flow.current_version


async def new_run(
    session: AsyncSession,
    flow: Flow,
    conversation: Conversation,
    variables: dict[str, Any] | None = None,
) -> FlowRun:
    version = runnable_version(flow)
    run_id = uuid.uuid4()
    run = FlowRun(
        id=run_id,
        company_id=flow.company_id,
        flow_id=flow.id,
        flow_version=version,
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        variables=dict(variables or {}),
        workflow_id=run_workflow_id(run_id),
    )
    session.add(run)
    await session.flush()
    return run


async def run_for_contact(
    session: AsyncSession,
    flow: Flow,
    contact_id: uuid.UUID,
    conversation_id: uuid.UUID | None,
    variables: dict[str, Any],
) -> tuple[FlowRun, Conversation]:
    """A run (not started yet) in the given conversation, or the contact's latest one."""
    runnable_version(flow)
    company_id = flow.company_id
    await deals.scoped_reference(session, Contact, company_id, contact_id, "body.contact_id")
    if conversation_id is None:
        conversation = await _latest_conversation(session, company_id, contact_id)
    else:
        conversation = await deals.scoped_reference(
            session, Conversation, company_id, conversation_id, "body.conversation_id"
        )
        if conversation.contact_id != contact_id:
            raise deals.invalid_reference("body.conversation_id", "not the contact's")
    return await new_run(session, flow, conversation, variables), conversation


async def request_start(session: AsyncSession, run: FlowRun, conversation: Conversation) -> None:
    """Queue the run's start in its conversation's workflow (signal-with-start by the relay)."""
    payload = {
        "remote_jid": conversation.remote_jid,
        "start": {"run_id": str(run.id), "flow_id": str(run.flow_id), "version": run.flow_version},
    }
    instance = await session.get(WhatsAppInstance, conversation.instance_id)
    assert instance is not None
    await store_flow_command(session, instance, InboxEventType.FLOW_START, run.id, payload)


async def request_cancel(
    session: AsyncSession, company_id: uuid.UUID, run_id: uuid.UUID
) -> FlowRun:
    """Queue a cancel for a run still active (the relay signals its workflow, or ends the run
    here when its workflow is gone); a finished run is returned as it is."""
    run = await get_run(session, company_id, run_id)
    if run.status in FINISHED or run.workflow_id is None:
        return run
    instance = await session.get(WhatsAppInstance, (await _conversation(session, run)).instance_id)
    assert instance is not None
    payload = {"workflow_id": run.workflow_id, "run_id": str(run.id)}
    await store_flow_command(session, instance, InboxEventType.FLOW_CANCEL, run.id, payload)
    return run


async def _conversation(session: AsyncSession, run: FlowRun) -> Conversation:
    conversation = await session.get(Conversation, run.conversation_id)
    assert conversation is not None
    return conversation


async def cancel_gone(session: AsyncSession, run_id: uuid.UUID) -> None:
    """A cancel whose workflow is gone (never started, or closed): the run ends ``cancelled``
    here, announced, unless it had ended already."""
    ended = await end_run(session, run_id, FlowRunStatus.CANCELLED, "cancelled")
    if ended is not None:
        await stage(session, [run_event(ended)])


FLOW_RUNS: Table = FlowRun.__table__  # type: ignore[attr-defined]  # for Core statements
# Built once, in Core, returning only what routing needs: every inbound pass asks it for its
# conversations
ACTIVE_RUNS = (
    select(FLOW_RUNS.c.conversation_id, FLOW_RUNS.c.id, FLOW_RUNS.c.workflow_id)
    .where(
        FLOW_RUNS.c.conversation_id == any_(bindparam("conversations", type_=ARRAY(Uuid()))),
        FLOW_RUNS.c.status.in_(ACTIVE),
        FLOW_RUNS.c.ended_at.is_(None),
    )
    .order_by(FLOW_RUNS.c.started_at)
)


async def active_runs(
    session: AsyncSession, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Row[Any, Any, Any]]:
    """The conversations' runs in progress (each one's ``id`` and ``workflow_id``), by
    conversation; one statement for them all."""
    if not conversation_ids:
        return {}
    found: dict[uuid.UUID, Row[Any, Any, Any]] = {}
    for row in await session.execute(ACTIVE_RUNS, {"conversations": list(conversation_ids)}):
        found.setdefault(row.conversation_id, row)  # the earliest started
    return found


@dataclass(frozen=True)
class RunContext:
    definition: dict[str, Any]
    contact: dict[str, Any]
    variables: dict[str, Any]


async def begin_run(session: AsyncSession, run_id: uuid.UUID) -> RunContext:
    run = await load_run(session, run_id)
    version = (
        await session.execute(
            select(FlowVersion).where(
                col(FlowVersion.flow_id) == run.flow_id,
                col(FlowVersion.version) == run.flow_version,
            )
        )
    ).scalar_one()
    contact = await session.get(Contact, run.contact_id)
    assert contact is not None
    return RunContext(version.definition, contact_fields(contact), dict(run.variables))


def contact_fields(contact: Contact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in CONTACT_FIELDS}


async def load_run(session: AsyncSession, run_id: uuid.UUID) -> FlowRun:
    run = await session.get(FlowRun, run_id)
    if run is None:
        raise NotFound(f"flow run {run_id} not found")
    return run


async def abandon_run(session: AsyncSession, run_id: uuid.UUID) -> None:
    """A run the database says is active but whose workflow does not answer (its start was
    lost): failed, so it no longer holds the conversation. Young runs are left alone, as their
    start may be on its way."""
    await session.execute(
        update(FlowRun)
        .where(
            col(FlowRun.id) == run_id,
            col(FlowRun.status).in_(ACTIVE),
            col(FlowRun.started_at) < func.now() - ORPHAN_AGE,
        )
        .values(
            status=FlowRunStatus.FAILED, error="its workflow is not running", ended_at=utc_now()
        )
    )


async def refuse_run(session: AsyncSession, run_id: uuid.UUID, active_workflow_id: str) -> bool:
    """Record a start asked while another run is active: cancelled, never started. False when
    that other run has ended meanwhile (its end is mirrored before the conversation hears of it)."""
    query = select(col(FlowRun.status)).where(col(FlowRun.workflow_id) == active_workflow_id)
    if (await session.execute(query)).scalar_one_or_none() in FINISHED:
        return False
    why = f"not started: the conversation already runs {active_workflow_id}"
    await end_run(session, run_id, FlowRunStatus.CANCELLED, why)
    return True


@dataclass(frozen=True)
class Mirror:
    status: str
    current_node: str | None
    variables: dict[str, Any]
    transcript: list[dict[str, Any]]
    error: str | None


async def mirror_run(session: AsyncSession, run_id: uuid.UUID, mirror: Mirror) -> FlowRun:
    """Copy the workflow's state to ``flow_runs``; a failed run leaves a dead letter."""
    run = await load_run(session, run_id)
    status = FlowRunStatus(mirror.status)
    if run.status in FINISHED:
        return run  # a retried last mirror
    run.status = status
    run.current_node_id = mirror.current_node
    run.variables = mirror.variables
    run.transcript = mirror.transcript
    run.error = mirror.error
    if status in FINISHED:
        run.ended_at = utc_now()
    if status == FlowRunStatus.FAILED:
        session.add(
            DeadLetter(
                company_id=run.company_id,
                kind=DeadLetterKind.FLOW_NODE,
                reference={
                    "flow_run_id": str(run.id),
                    "flow_id": str(run.flow_id),
                    "conversation_id": str(run.conversation_id),
                },
                error=mirror.error or "the flow run failed",
                attempts=1,
                payload={"version": run.flow_version, "variables": mirror.variables},
            )
        )
    await session.flush()
    await stage(session, [run_event(run)])
    return run


def run_event(run: FlowRun) -> Event:
    data = {
        "id": str(run.id),
        "flow_id": str(run.flow_id),
        "status": run.status.value,
        "current_node_id": run.current_node_id,
    }
    return Event("flow_run.updated", run.company_id, data, conversation_id=run.conversation_id)


async def end_run(
    session: AsyncSession, run_id: uuid.UUID, status: FlowRunStatus, error: str
) -> FlowRun | None:
    """End a run that has no workflow to do it (never started, or gone); None if it had ended."""
    statement = (
        update(FlowRun)
        .where(col(FlowRun.id) == run_id, col(FlowRun.status).in_(ACTIVE))
        .values(status=status, error=error, ended_at=utc_now())
        .returning(FlowRun)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()
