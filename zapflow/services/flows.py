"""Flows: drafts, immutable published versions, runs (the ``flow_runs`` mirror of each
FlowWorkflow), trigger matching, and the CRM changes flow steps make.

Trigger matching runs on every customer message in the worker's event loop, with the tenant's
patterns: they are RE2 programs (``language.compile_pattern``/``compile_keywords``), whose time
is linear in the text, on at most ``MAX_MATCHED_TEXT`` characters of each message, so one
company's pattern costs microseconds to milliseconds per message whatever it is, never the
other companies' turn on the loop.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import any_, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.cache import Cache, forget
from zapflow.egress import EgressPolicy
from zapflow.errors import Conflict, NotFound, Unprocessable
from zapflow.flows import limits
from zapflow.flows.language import FlowDefinition, compile_keywords, compile_pattern
from zapflow.flows.validation import FlowIssue, InvalidFlow, parse_flow
from zapflow.models import (
    Contact,
    Conversation,
    DeadLetter,
    DeadLetterKind,
    Deal,
    DealStageChange,
    Flow,
    FlowRun,
    FlowRunStatus,
    FlowStatus,
    FlowVersion,
    Funnel,
    Message,
    MessageDirection,
    Stage,
    utc_now,
)
from zapflow.services import contacts, deals
from zapflow.services.agent_inbox import assign_conversation, change_conversation
from zapflow.services.events import Event, stage
from zapflow.services.paging import cut_page, keyset
from zapflow.services.queries import get_scoped
from zapflow.temporal import run_workflow_id

log = logging.getLogger(__name__)
ACTIVE = (FlowRunStatus.RUNNING, FlowRunStatus.WAITING)
FINISHED = {FlowRunStatus.COMPLETED, FlowRunStatus.FAILED, FlowRunStatus.CANCELLED}
ORPHAN_AGE = timedelta(minutes=1)
CONTACT_FIELDS = ("name", "phone_number", "email", "tags", "custom_fields")


# --- definitions and versions ----------------------------------------------------------------


def validate_definition(document: dict[str, Any], egress: EgressPolicy) -> FlowDefinition:
    """The flow, or a 422 whose details list every problem by node id and field."""
    try:
        return parse_flow(document, egress)
    except InvalidFlow as exc:
        first = exc.issues[0]
        where = f"{first.node_id}.{first.field}" if first.node_id else first.field
        raise Unprocessable(
            f"{where}: {first.message}",
            code="invalid_flow",
            details=[issue.model_dump() for issue in exc.issues],
        ) from None


def issues_of(document: dict[str, Any], egress: EgressPolicy) -> list[FlowIssue]:
    """Every rule the document breaks, by node id and field (none: it can be published)."""
    try:
        parse_flow(document, egress)
    except InvalidFlow as exc:
        return exc.issues
    return []


def _draft(
    document: dict[str, Any], egress: EgressPolicy, allow_issues: bool
) -> tuple[str, str | None, dict[str, Any]]:
    """A draft's name, description and stored document: the normalized flow, or with
    ``allow_issues`` a document breaking rules stored as written (publishing refuses it) as
    long as it has a name."""
    try:
        flow = validate_definition(document, egress)
    except Unprocessable:
        name, description = document.get("name"), document.get("description")
        if not allow_issues or not isinstance(name, str) or not 0 < len(name) <= 200:
            raise
        return name, description if isinstance(description, str) else None, document
    return flow.name, flow.description, flow.model_dump(mode="json", exclude_unset=True)


async def create_flow(
    session: AsyncSession,
    company_id: uuid.UUID,
    document: dict[str, Any],
    egress: EgressPolicy,
    allow_issues: bool = False,
) -> Flow:
    name, description, draft = _draft(document, egress, allow_issues)
    row = Flow(company_id=company_id, name=name, description=description, draft_definition=draft)
    session.add(row)
    await session.flush()
    return row


async def get_flow(session: AsyncSession, company_id: uuid.UUID, flow_id: uuid.UUID) -> Flow:
    return await get_scoped(session, Flow, company_id, flow_id)


async def replace_draft(
    session: AsyncSession,
    flow: Flow,
    document: dict[str, Any],
    egress: EgressPolicy,
    allow_issues: bool = False,
) -> Flow:
    """A new draft; published versions, and the runs on them, are untouched."""
    flow.name, flow.description, flow.draft_definition = _draft(document, egress, allow_issues)
    flow.updated_at = utc_now()
    await session.flush()
    return flow


async def publish(
    session: AsyncSession,
    company_id: uuid.UUID,
    flow_id: uuid.UUID,
    user_id: uuid.UUID | None,
    egress: EgressPolicy,
) -> FlowVersion:
    """The draft as the next immutable version, used by the runs that start from now on."""
    flow = await session.get(Flow, flow_id, with_for_update=True)
    if flow is None or flow.company_id != company_id:
        raise NotFound("flow not found")
    if flow.status == FlowStatus.ARCHIVED:
        raise Conflict("the flow is archived", code="flow_archived")
    definition = validate_definition(flow.draft_definition, egress)
    number = (flow.current_version or 0) + 1
    version = FlowVersion(
        company_id=company_id,
        flow_id=flow.id,
        version=number,
        definition=flow.draft_definition,
        published_by_user_id=user_id,
    )
    session.add(version)
    flow.current_version = number
    flow.status = FlowStatus.PUBLISHED
    flow.triggers = [t.model_dump(mode="json") for t in definition.triggers]
    flow.updated_at = utc_now()
    await session.flush()
    forget(session, triggers_cache_key(company_id))
    return version


async def archive(session: AsyncSession, flow: Flow) -> None:
    """No new runs (triggers stop matching); running ones finish on their version."""
    flow.status = FlowStatus.ARCHIVED
    flow.updated_at = utc_now()
    await session.flush()
    forget(session, triggers_cache_key(flow.company_id))


async def page_flows(
    session: AsyncSession, company_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Flow], str | None]:
    query = select(Flow).where(col(Flow.company_id) == company_id)
    return await _newest_first(session, query, Flow.created_at, Flow.id, limit, cursor)


async def definition_of(
    session: AsyncSession, flow: Flow, version: int | None, egress: EgressPolicy
) -> FlowDefinition:
    """The draft (``version`` None: a 422 naming its issues when it breaks a rule) or a
    published version, parsed."""
    if version is None:
        return validate_definition(flow.draft_definition, egress)
    return FlowDefinition.model_validate((await get_version(session, flow, version)).definition)


async def get_version(session: AsyncSession, flow: Flow, version: int) -> FlowVersion:
    query = select(FlowVersion).where(
        col(FlowVersion.flow_id) == flow.id, col(FlowVersion.version) == version
    )
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"version {version} of this flow does not exist")
    return row


async def page_versions(
    session: AsyncSession, flow: Flow, limit: int, cursor: str | None
) -> tuple[list[FlowVersion], str | None]:
    query = select(FlowVersion).where(
        col(FlowVersion.company_id) == flow.company_id, col(FlowVersion.flow_id) == flow.id
    )
    return await _newest_first(
        session, query, FlowVersion.published_at, FlowVersion.id, limit, cursor
    )


async def runs_per_node(session: AsyncSession, flow: Flow) -> list[tuple[int, str, str, int]]:
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
    return [(v, str(n), str(s), c) for v, n, s, c in (await session.execute(query)).all()]


# --- runs ------------------------------------------------------------------------------------


async def get_run(session: AsyncSession, company_id: uuid.UUID, run_id: uuid.UUID) -> FlowRun:
    return await get_scoped(session, FlowRun, company_id, run_id)


async def page_runs(
    session: AsyncSession, flow: Flow, limit: int, cursor: str | None
) -> tuple[list[FlowRun], str | None]:
    query = select(FlowRun).where(
        col(FlowRun.company_id) == flow.company_id, col(FlowRun.flow_id) == flow.id
    )
    return await _newest_first(session, query, FlowRun.started_at, FlowRun.id, limit, cursor)


async def _newest_first(
    session: AsyncSession, query: Any, at: Any, row_id: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """A keyset page by (``at``, ``row_id``), newest first."""
    paged = keyset(query, [col(at), col(row_id)], (datetime, uuid.UUID), limit, cursor)
    rows = list((await session.execute(paged)).scalars())
    return cut_page(rows, limit, lambda r: (getattr(r, at.key), r.id))


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


async def active_run(session: AsyncSession, conversation_id: uuid.UUID) -> FlowRun | None:
    query = (
        select(FlowRun)
        .where(
            col(FlowRun.conversation_id) == conversation_id,
            col(FlowRun.status).in_(ACTIVE),
            col(FlowRun.ended_at).is_(None),
        )
        .order_by(col(FlowRun.started_at))
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


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


# --- triggers ---------------------------------------------------------------------------------


def _matches(trigger: dict[str, Any], texts: Sequence[str], first_message: bool) -> bool:
    kind = trigger.get("type")
    if kind == "first_message":
        return first_message
    if kind == "keyword":
        matcher = _matcher("keyword", tuple(trigger.get("keywords", [])))
    elif kind == "regex":
        matcher = _matcher("regex", trigger["pattern"])
    else:
        return False
    return matcher is not None and any(matcher.search(t[: limits.MAX_MATCHED_TEXT]) for t in texts)


@lru_cache(maxsize=1024)
def _matcher(kind: str, source: str | tuple[str, ...]) -> Any | None:
    """A trigger's compiled pattern, once per process; None when it matches nothing (a version
    published before patterns were RE2, whose pattern RE2 refuses, never matches)."""
    try:
        if isinstance(source, tuple):
            return compile_keywords(list(source))
        return compile_pattern(source)
    except ValueError as exc:
        log.warning("a published %s trigger is not run: %s", kind, exc)
        return None


async def _is_first_contact(session: AsyncSession, contact_id: uuid.UUID, fresh: int) -> bool:
    """The contact has no inbound messages but the ``fresh`` ones just stored."""
    query = (
        select(func.count())
        .select_from(Message)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(
            col(Conversation.contact_id) == contact_id,
            col(Message.direction) == MessageDirection.INBOUND,
        )
    )
    return int((await session.execute(query)).scalar_one()) <= fresh


MESSAGE_TRIGGERS = ("keyword", "regex", "first_message")
TRIGGERS_CACHE_SECONDS = 300


def triggers_cache_key(company_id: uuid.UUID) -> str:
    return f"flow_triggers:{company_id}"


async def message_triggers(
    cache: Cache, session: AsyncSession, company_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The company's published flows with message triggers, oldest first, as
    ``{"id", "triggers"}``: read for every inbound batch, so through the cache (publishing and
    archiving invalidate it)."""

    async def load() -> list[dict[str, Any]]:
        query = (
            select(Flow)
            .where(col(Flow.company_id) == company_id, col(Flow.status) == FlowStatus.PUBLISHED)
            .order_by(col(Flow.created_at), col(Flow.id))
        )
        found = []
        for flow in (await session.execute(query)).scalars():
            triggers = [t for t in flow.triggers if t.get("type") in MESSAGE_TRIGGERS]
            if triggers:
                found.append({"id": str(flow.id), "triggers": triggers})
        return found

    rows: list[dict[str, Any]] = await cache.get(
        triggers_cache_key(company_id), TRIGGERS_CACHE_SECONDS, load
    )
    return rows


async def match_trigger(
    session: AsyncSession,
    cache: Cache,
    company_id: uuid.UUID,
    conversation_id: uuid.UUID,
    texts: Sequence[str],
    fresh: int,
    key_id: str,
) -> FlowRun | None:
    """The run a customer's messages start (first matching published flow, oldest first), or
    None. Paused conversations (a human took over) start nothing."""
    candidates = await message_triggers(cache, session, company_id)
    if not candidates:  # most messages: nothing more to read
        return None
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.is_paused:
        return None
    first: bool | None = None
    for candidate in candidates:
        for trigger in candidate["triggers"]:
            if trigger["type"] == "first_message" and first is None:
                first = await _is_first_contact(session, conversation.contact_id, fresh)
            if not _matches(trigger, texts, bool(first)):
                continue
            flow = await session.get(Flow, uuid.UUID(candidate["id"]))
            if flow is None or flow.status != FlowStatus.PUBLISHED:
                break  # a stale cached entry: the flow was archived meanwhile
            audience = Audience(conversation, f"message:{key_id}", {})
            return await run_for_audience(session, flow, audience)
    return None


@dataclass(frozen=True)
class Audience:
    """One run a trigger asks for: where, with which starting variables, and the key that
    makes asking twice start it once."""

    conversation: Conversation
    key: str
    variables: dict[str, Any]


def _latest_conversations() -> Any:
    """Each contact's latest conversation."""
    return (
        select(Conversation)
        .order_by(col(Conversation.contact_id), col(Conversation.last_message_at).desc())
        .ext(distinct_on(col(Conversation.contact_id)))
    )


async def tagged_audience(
    session: AsyncSession, company_id: uuid.UUID, tag: str, firing: str
) -> list[Audience]:
    """A schedule trigger's runs: every contact carrying ``tag``, in their latest conversation."""
    query = (
        _latest_conversations()
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .where(col(Contact.company_id) == company_id, literal(tag) == any_(col(Contact.tags)))
    )
    rows = (await session.execute(query)).scalars()
    return [Audience(c, f"{firing}:{c.contact_id}", {}) for c in rows]


async def stage_audience(
    session: AsyncSession, company_id: uuid.UUID, stage_id: str, since: datetime
) -> list[Audience]:
    """A deal-stage trigger's runs: each deal that entered the stage since ``since``, in its
    contact's latest conversation, with ``deal_id`` set."""
    try:
        stage_uuid = uuid.UUID(stage_id)
    except ValueError:
        return []
    latest = _latest_conversations().where(col(Conversation.company_id) == company_id).subquery()
    query = (
        select(col(DealStageChange.id), col(Deal.id), latest.c.id)
        .join(Deal, col(Deal.id) == col(DealStageChange.deal_id))
        .join(latest, latest.c.contact_id == col(Deal.contact_id))
        .where(
            col(DealStageChange.company_id) == company_id,
            col(DealStageChange.to_stage_id) == stage_uuid,
            col(DealStageChange.created_at) >= since,
        )
        .order_by(col(DealStageChange.created_at))
    )
    audience = []
    for change_id, deal_id, conversation_id in (await session.execute(query)).all():
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        key = f"deal_stage_change:{change_id}"
        audience.append(Audience(conversation, key, {"deal_id": str(deal_id)}))
    return audience


TRIGGER_KEY = "trigger_event"  # the variable holding a triggered run's key


async def run_for_audience(session: AsyncSession, flow: Flow, audience: Audience) -> FlowRun:
    """The run for this audience member: the one already made for its key, else a new one."""
    query = select(FlowRun).where(
        col(FlowRun.flow_id) == flow.id, col(FlowRun.variables)[TRIGGER_KEY].astext == audience.key
    )
    existing = (await session.execute(query.limit(1))).scalar_one_or_none()
    if existing is not None:
        return existing
    variables = {**audience.variables, TRIGGER_KEY: audience.key}
    return await new_run(session, flow, audience.conversation, variables)


# --- CRM changes made by flow steps ----------------------------------------------------------


async def _funnel(session: AsyncSession, company_id: uuid.UUID, ref: str) -> Funnel:
    query = select(Funnel).where(col(Funnel.company_id) == company_id)
    query = query.where(_id_or_name(Funnel, ref)).order_by(col(Funnel.created_at)).limit(1)
    funnel = (await session.execute(query)).scalar_one_or_none()
    if funnel is None:
        raise Unprocessable(f"funnel: no funnel {ref!r} in this company")
    return funnel


async def _stage(session: AsyncSession, funnel_id: uuid.UUID, ref: str) -> Stage:
    query = select(Stage).where(col(Stage.funnel_id) == funnel_id, _id_or_name(Stage, ref))
    found = (await session.execute(query.limit(1))).scalar_one_or_none()
    if found is None:
        raise Unprocessable(f"stage: no stage {ref!r} in this funnel")
    return found


def _id_or_name(model: type[Funnel] | type[Stage], ref: str) -> Any:
    try:
        return or_(col(model.id) == uuid.UUID(ref), col(model.name) == ref)
    except ValueError:
        return col(model.name) == ref


async def create_deal(session: AsyncSession, run: FlowRun, params: dict[str, Any]) -> Deal:
    """A deal for the run's contact, announced as ``deal.created``."""
    funnel = await _funnel(session, run.company_id, params["funnel"])
    fields: dict[str, Any] = {
        "title": params["title"][:200],
        "funnel_id": funnel.id,
        "contact_id": run.contact_id,
        "stage_id": (await _stage(session, funnel.id, params["stage"])).id
        if params.get("stage")
        else None,
    }
    if params.get("value") is not None:
        fields["value"] = Decimal(str(params["value"])).quantize(Decimal("0.01"))
    deal = await deals.create_deal(session, run.company_id, fields, None)
    public = await deals.get_public(session, run.company_id, deal.id)
    await stage(session, [deals.deal_event("deal.created", run.company_id, public)])
    return deal


async def move_deal(session: AsyncSession, run: FlowRun, params: dict[str, Any]) -> None:
    """Move the deal named by the node's variable, announced as ``deal.moved`` (unless it was
    there already)."""
    try:
        deal_id = uuid.UUID(str(params.get("deal_id")))
    except ValueError:
        raise Unprocessable("deal: the run has no deal id in that variable") from None
    deal = await deals.lock_deal(session, run.company_id, deal_id)
    target = await _stage(session, deal.funnel_id, params["stage"])
    if await deals.move_deal(session, deal, target.id, None):
        public = await deals.get_public(session, run.company_id, deal.id)
        await stage(session, [deals.deal_event("deal.moved", run.company_id, public)])


async def update_contact(session: AsyncSession, run: FlowRun, params: dict[str, Any]) -> Contact:
    """The run's contact changed through the API's own operation (its validation, its cache
    invalidation): a value the API would refuse fails the step, naming the field. Custom fields
    are merged into the contact's."""
    fields: dict[str, Any] = {}
    if params.get("name"):
        fields["name"] = params["name"][: contacts.MAX_NAME_LENGTH]
    if params.get("email"):
        fields["email"] = params["email"]
    if params.get("custom_fields"):
        contact = await session.get(Contact, run.contact_id, with_for_update=True)
        assert contact is not None
        fields["custom_fields"] = {**contact.custom_fields, **params["custom_fields"]}
    data = contacts.parse_update(fields)
    return await contacts.update_contact(session, run.company_id, run.contact_id, data)


async def handoff(session: AsyncSession, run: FlowRun, params: dict[str, Any]) -> None:
    """Pause the bot in the conversation, assign it when asked, announce ``flow.handoff``."""
    company_id = run.company_id
    await change_conversation(session, company_id, run.conversation_id, {"is_paused": True})
    if params.get("assign_user_id"):
        await assign_conversation(
            session, company_id, run.conversation_id, uuid.UUID(params["assign_user_id"])
        )
    data = {
        "flow_run_id": str(run.id),
        "flow_id": str(run.flow_id),
        "team": params.get("team"),
        "note": params.get("note"),
        "assigned_user_id": params.get("assign_user_id"),
    }
    await stage(
        session, [Event("flow.handoff", company_id, data, conversation_id=run.conversation_id)]
    )


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
