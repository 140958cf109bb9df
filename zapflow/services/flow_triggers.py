"""Flow triggers: which published flow a customer's messages start, and the audiences of
schedule and deal-stage triggers, each member run once per key.

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
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import any_, func, literal, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.cache import Cache
from zapflow.flows import limits
from zapflow.flows.language import compile_keywords, compile_pattern
from zapflow.models import (
    Contact,
    Conversation,
    Deal,
    DealStageChange,
    Flow,
    FlowRun,
    FlowStatus,
    Message,
    MessageDirection,
)
from zapflow.services.flow_runs import new_run

log = logging.getLogger(__name__)


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
