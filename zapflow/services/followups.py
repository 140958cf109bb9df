"""Follow-ups: scheduling, listing, cancelling and rescheduling them, and each state change.

The ``followup_queue`` row is the record a user sees; its timer lives in the conversation's
ConversationWorkflow (see workflows/conversation.py). Every change here also queues a
``followup`` inbox event, so the relay tells that workflow to reload its timers: the row stays the
single source of truth and the workflow only mirrors it.

A row moves PENDING → SENT | CANCELLED | FAILED once, by a conditional UPDATE. A follow-up the
workflow has handed to the send path (``message_id`` set) can no longer be cancelled: it is SENT
when the provider accepts its message and FAILED when the send fails for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, Uuid, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Conflict, Unprocessable
from zapflow.models import (
    Company,
    Conversation,
    ConversationStatus,
    FollowUp,
    FollowUpStatus,
    Message,
    MessageSender,
    WhatsAppInstance,
    utc_now,
)
from zapflow.schemas.followups import FollowUpPublic, Step, Template
from zapflow.services import business_hours, templates
from zapflow.services.events import Event, stage
from zapflow.services.inbox import store_followups_changed
from zapflow.services.messages import OutboundContent, queue_outbound
from zapflow.services.paging import cut_page, keyset
from zapflow.services.queries import get_scoped

# WhatsApp's customer-service window: free-form messages only this long after the last inbound
SERVICE_WINDOW = timedelta(hours=24)
OUTSIDE_WINDOW = "outside_24h_window"
CUSTOMER_REPLIED = "customer_replied"


@dataclass(frozen=True)
class Options:
    cancel_on_reply: bool = True
    only_in_business_hours: bool = False


async def schedule(
    session: AsyncSession,
    conversation: Conversation,
    steps: Sequence[Step],
    options: Options,
    user_id: uuid.UUID | None = None,
) -> list[FollowUp]:
    """Store one follow-up per step (a sequence when several), wake the conversation's timers
    and stage ``followup.scheduled`` for each."""
    if conversation.status == ConversationStatus.CLOSED:
        raise Unprocessable("the conversation is closed", details={"field": "conversation_id"})
    company = await session.get(Company, conversation.company_id)
    assert company is not None
    for index, step in enumerate(steps):
        if step.template:
            field = f"steps[{index}].template"
            if await templates.has_templates(session, company.id, conversation.instance_id):
                await check_synced(session, conversation, step.template, field)
            else:
                check_template(company, step.template, field=field)
    sequence_id = uuid.uuid4() if len(steps) > 1 else None
    rows = []
    due = utc_now()
    for index, step in enumerate(steps):
        due = step.due if isinstance(step.due, datetime) else due + step.due
        rows.append(
            FollowUp(
                company_id=conversation.company_id,
                conversation_id=conversation.id,
                contact_id=conversation.contact_id,
                scheduled_for=_effective_due(due, company, options.only_in_business_hours),
                message_text=step.text,
                template_name=step.template.name if step.template else None,
                template_params=_template_params(step.template),
                cancel_on_reply=options.cancel_on_reply,
                only_in_business_hours=options.only_in_business_hours,
                sequence_id=sequence_id,
                sequence_step=index + 1 if sequence_id else None,
                workflow_id=conversation.workflow_id,
                created_by_user_id=user_id,
            )
        )
    session.add_all(rows)
    await session.flush()
    await _wake_timers(session, conversation)
    await stage(session, [followup_event("followup.scheduled", row) for row in rows])
    return rows


async def check_synced(
    session: AsyncSession, conversation: Conversation, template: Template, field: str
) -> None:
    """The number's synced template (``services/templates.py``): approved, and its parameters
    the body's."""
    found = await templates.find_template(
        session, conversation.company_id, conversation.instance_id, template.name,
        template.language, field,
    )  # fmt: skip
    templates.check_body_params(found, template.params, field, f"{field}.params")


def check_template(company: Company, template: Template, field: str = "template") -> None:
    """The template is one the company registered (``settings.templates``), with its params."""
    known = {t.get("name"): t for t in company.settings.get("templates") or []}
    registered = known.get(template.name)
    if registered is None:
        names = ", ".join(sorted(str(n) for n in known)) or "none registered"
        raise Unprocessable(
            f"template {template.name!r} does not exist (known: {names})",
            details={"field": field},
        )
    expected = int(registered.get("parameters", 0))
    if len(template.params) != expected:
        raise Unprocessable(
            f"template {template.name!r} takes {expected} parameters, got {len(template.params)}",
            details={"field": f"{field}.params"},
        )


def _template_params(template: Template | None) -> dict[str, Any] | None:
    if template is None:
        return None
    return {"language": template.language, "params": list(template.params)}


def _effective_due(due: datetime, company: Company, only_in_business_hours: bool) -> datetime:
    if not only_in_business_hours:
        return due
    return business_hours.next_opening(due, company.timezone, company.business_hours)


async def get_followup(
    session: AsyncSession, company_id: uuid.UUID, followup_id: uuid.UUID
) -> FollowUp:
    return await get_scoped(session, FollowUp, company_id, followup_id)


async def page_followups(
    session: AsyncSession,
    company_id: uuid.UUID,
    status: FollowUpStatus | None,
    conversation_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[FollowUp], str | None]:
    """The company's follow-ups, latest due first."""
    query = select(FollowUp).where(col(FollowUp.company_id) == company_id)
    if status is not None:
        query = query.where(col(FollowUp.status) == status)
    if conversation_id is not None:
        query = query.where(col(FollowUp.conversation_id) == conversation_id)
    query = keyset(
        query, [col(FollowUp.scheduled_for), col(FollowUp.id)], (datetime, uuid.UUID), limit, cursor
    )
    rows = list((await session.execute(query)).scalars())
    return cut_page(rows, limit, lambda f: (f.scheduled_for, f.id))


async def cancel(
    session: AsyncSession, followup: FollowUp, whole_sequence: bool = False
) -> list[FollowUp]:
    """Cancel a pending follow-up (or every pending step of its sequence), staging
    ``followup.cancelled`` for each."""
    await session.refresh(followup, with_for_update=True)  # the timer may just have fired
    _check_changeable(followup)
    rows = [followup]
    if whole_sequence and followup.sequence_id:
        query = select(FollowUp).where(
            _cancellable(), col(FollowUp.sequence_id) == followup.sequence_id
        )
        rows = list((await session.execute(query.with_for_update())).scalars())
    now = utc_now()
    for row in rows:
        row.status = FollowUpStatus.CANCELLED
        row.cancelled_at = now
    await session.flush()
    await _wake_timers(session, followup)
    await stage(session, [followup_event("followup.cancelled", row) for row in rows])
    return rows


async def reschedule(session: AsyncSession, followup: FollowUp, due: datetime) -> FollowUp:
    """Move a pending follow-up to ``due`` (``followup.scheduled`` again)."""
    await session.refresh(followup, with_for_update=True)
    _check_changeable(followup)
    company = await session.get(Company, followup.company_id)
    assert company is not None
    followup.scheduled_for = _effective_due(due, company, followup.only_in_business_hours)
    await session.flush()
    await _wake_timers(session, followup)
    await stage(session, [followup_event("followup.scheduled", followup)])
    return followup


def _check_changeable(followup: FollowUp) -> None:
    if followup.status != FollowUpStatus.PENDING:
        raise Conflict(f"the follow-up is already {followup.status.value}")
    if followup.message_id is not None:
        raise Conflict("the follow-up is being sent")


def _cancellable() -> Any:
    return (col(FollowUp.status) == FollowUpStatus.PENDING) & col(FollowUp.message_id).is_(None)


async def _wake_timers(session: AsyncSession, subject: Conversation | FollowUp) -> None:
    """Queue a ``followup`` inbox event: the relay tells the conversation's workflow to reload."""
    if isinstance(subject, FollowUp):
        conversation = await session.get(Conversation, subject.conversation_id)
        assert conversation is not None
    else:
        conversation = subject
    instance = await session.get(WhatsAppInstance, conversation.instance_id)
    assert instance is not None
    await store_followups_changed(session, instance, conversation.remote_jid)


def followup_event(event_type: str, followup: FollowUp | Row[Any]) -> Event:
    return Event(
        event_type,
        followup.company_id,
        FollowUpPublic.model_validate(followup).model_dump(mode="json"),
        followup.conversation_id,
    )


# ---- called by the conversation's workflow (through activities) ----


async def pending_timers(session: AsyncSession, conversation_id: uuid.UUID) -> list[FollowUp]:
    """The follow-ups whose timers the workflow must hold: pending and not yet handed over."""
    query = (
        select(FollowUp)
        .where(col(FollowUp.conversation_id) == conversation_id, _cancellable())
        .order_by(col(FollowUp.scheduled_for))
    )
    return list((await session.execute(query)).scalars())


FOLLOWUPS: Table = FollowUp.__table__  # type: ignore[attr-defined]  # for Core statements
# Built once, in Core: every inbound pass runs it for its conversations (usually matching
# nothing), and the ORM's bulk-update path cost more than the round trip (the worker's profile)
CANCEL_ON_REPLY = (
    update(FOLLOWUPS)
    .where(
        # not "conversation_id": an UPDATE takes execute() parameters named after a column as
        # SET values, and that name would clash with this one's
        FOLLOWUPS.c.conversation_id == any_(bindparam("conversations", type_=ARRAY(Uuid()))),
        FOLLOWUPS.c.status == FollowUpStatus.PENDING,
        FOLLOWUPS.c.message_id.is_(None),
        FOLLOWUPS.c.cancel_on_reply.is_(True),
    )
    .values(
        status=FollowUpStatus.CANCELLED,
        cancelled_at=bindparam("now"),
        failure_reason=CUSTOMER_REPLIED,
        updated_at=bindparam("now"),
    )
    .returning(*FOLLOWUPS.c)
)


async def cancel_on_reply(
    session: AsyncSession, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The customers of these conversations wrote: every pending follow-up that asked for it is
    cancelled, in one statement (their ids by conversation; ``followup.cancelled`` staged in
    the conversations' order). The conversations' rows are locked by the caller (the inbound
    persist's upsert): two transactions never race for the same follow-ups in other orders."""
    cancelled: dict[uuid.UUID, list[Row[Any]]] = {c: [] for c in conversation_ids}
    params = {"conversations": list(conversation_ids), "now": utc_now()}
    if conversation_ids:
        for row in await session.execute(CANCEL_ON_REPLY, params):
            cancelled[row.conversation_id].append(row)
    rows = [row for found in cancelled.values() for row in found]
    await stage(session, [followup_event("followup.cancelled", row) for row in rows])
    return {c: [row.id for row in found] for c, found in cancelled.items()}


async def fire(session: AsyncSession, followup_id: uuid.UUID) -> uuid.UUID | None:
    """The timer fired: queue the message and return its id, or fail for the 24-hour window
    (None). Idempotent: a retried call returns the message queued the first time."""
    followup = await session.get(FollowUp, followup_id, with_for_update=True)
    if followup is None or followup.status != FollowUpStatus.PENDING:
        return None
    if followup.message_id is not None:
        return followup.message_id
    conversation = await session.get(Conversation, followup.conversation_id)
    assert conversation is not None
    content = _content(followup, conversation)
    if content is None:
        await _finish(session, followup, FollowUpStatus.FAILED, OUTSIDE_WINDOW)
        return None
    message, _ = await queue_outbound(
        session,
        conversation,
        content,
        sent_by=MessageSender.FOLLOWUP,
        user_id=followup.created_by_user_id,
        client_id=f"followup:{followup.id}",
        via_relay=False,
    )
    followup.message_id = message.id
    await session.flush()
    return message.id


def _content(followup: FollowUp, conversation: Conversation) -> OutboundContent | None:
    """Free text inside the 24-hour window, else the template; None when neither may go."""
    in_window = conversation.last_inbound_at is not None and (
        utc_now() - conversation.last_inbound_at < SERVICE_WINDOW
    )
    if followup.message_text and in_window:
        return OutboundContent(type="text", text=followup.message_text)
    if followup.template_name:
        params = followup.template_params or {}
        template = {
            "name": followup.template_name,
            "language": params.get("language") or "en_US",
            "params": params.get("params") or [],
        }
        return OutboundContent(type="template", template=template)
    return None


async def message_sent(session: AsyncSession, message: Message) -> None:
    """The provider accepted a follow-up's message: the follow-up is SENT."""
    await _finish_for_message(session, message, FollowUpStatus.SENT, None)


async def message_failed(session: AsyncSession, message: Message, reason: str) -> None:
    await _finish_for_message(session, message, FollowUpStatus.FAILED, reason)


async def _finish_for_message(
    session: AsyncSession, message: Message, status: FollowUpStatus, reason: str | None
) -> None:
    if message.sent_by != MessageSender.FOLLOWUP:
        return
    query = select(FollowUp).where(
        col(FollowUp.message_id) == message.id, col(FollowUp.status) == FollowUpStatus.PENDING
    )
    followup = (await session.execute(query.with_for_update())).scalar_one_or_none()
    if followup is not None:
        await _finish(session, followup, status, reason)


async def _finish(
    session: AsyncSession, followup: FollowUp, status: FollowUpStatus, reason: str | None
) -> None:
    followup.status = status
    followup.failure_reason = reason
    if status == FollowUpStatus.SENT:
        followup.sent_at = utc_now()
    await session.flush()
    await stage(session, [followup_event(f"followup.{status.value.lower()}", followup)])
