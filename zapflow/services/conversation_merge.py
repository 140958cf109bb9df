"""One conversation per person and number, when two were made: merging them, and sending a
message that reached the wrong one to the right one.

A person can hold two conversations on one number: a phone-keyed chat from before Meta's BSUIDs
and a BSUID-keyed one from after, two contacts merged (services/contact_merge.py), or two first
messages of one person relayed before either was stored. ``merge_split`` keeps the oldest of a
contact's conversations on each number and merges the others into it, in the caller's
transaction: messages (ordered by their own time, so the thread reads in order), embeddings,
follow-ups, SLA targets, flow runs, resolutions and system notes move; counters add up; it is
open when either was; assignment and team are the survivor's, else the merged one's. The merged
row is deleted. Its key stays the person's (the contact holds the identity), so the relay
(``chat_keys``) sends that address to the survivor from now on.

The workflows are told through the inbox, never by a call to Temporal: both reload their
follow-up and SLA timers (the survivor's gain the moved ones, the merged one's find none and,
its key having no conversation any more, it lets go of its flow run and ends when idle). A
moved run tells the survivor's workflow of its end (its last mirror names the conversation it
belongs to then). A message already on its way to the merged workflow (a relay's remembered key)
is not lost: its persist finds no conversation under that key while the contact has one on the
number, and queues its inbox rows again for the survivor (``services/conversations.forward``,
``inbox_events.conversation_key``) instead of creating a second conversation. That is also
how two first messages of one person relayed at once end in one conversation: the first stored
wins.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from zapflow.models import (
    Conversation,
    ConversationEmbedding,
    ConversationResolution,
    ConversationStatus,
    FlowRun,
    FollowUp,
    Message,
    SlaTarget,
    SystemNote,
    WhatsAppInstance,
    utc_now,
)
from zapflow.services.conversations import conversation_updated
from zapflow.services.events import Event, stage
from zapflow.services.inbox import store_followups_changed, store_slas_changed

# every table that references a conversation
MOVED = tuple(
    model.__tablename__
    for model in (
        Message,
        ConversationEmbedding,
        FollowUp,
        SlaTarget,
        FlowRun,
        ConversationResolution,
        SystemNote,
    )
)


async def merge_split(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID
) -> dict[str, int]:
    """Merge the contact's conversations on each number into that number's oldest; returns
    the counts moved (``conversations`` merged, and per table)."""
    query = (
        select(Conversation)
        .where(
            col(Conversation.company_id) == company_id, col(Conversation.contact_id) == contact_id
        )
        .order_by(col(Conversation.created_at), col(Conversation.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    oldest: dict[uuid.UUID, Conversation] = {}
    moved: dict[str, int] = {"conversations": 0}
    for conversation in (await session.execute(query)).scalars():
        survivor = oldest.setdefault(conversation.instance_id, conversation)
        if survivor is conversation:
            continue
        for table, count in (await merge_conversations(session, survivor, conversation)).items():
            moved[table] = moved.get(table, 0) + count
        moved["conversations"] += 1
    return moved


async def merge_conversations(
    session: AsyncSession, survivor: Conversation, merged: Conversation
) -> dict[str, int]:
    """Merge ``merged`` into ``survivor`` (one number, both rows locked by the caller)."""
    moved: dict[str, int] = {}
    for name in MOVED:
        table = SQLModel.metadata.tables[str(name)]
        statement = (
            update(table)
            .where(table.c.conversation_id == merged.id)
            .values(conversation_id=survivor.id)
        )
        result: Any = await session.execute(statement)
        moved[name] = result.rowcount
    _combine(survivor, merged)
    await session.execute(delete(Conversation).where(col(Conversation.id) == merged.id))
    await session.flush()
    instance = await session.get(WhatsAppInstance, survivor.instance_id)
    assert instance is not None
    for remote_jid in (survivor.remote_jid, merged.remote_jid):
        await store_followups_changed(session, instance, remote_jid)
        await store_slas_changed(session, instance.company_id, instance.id, remote_jid)
    merged_event = Event(
        "conversation.merged",
        survivor.company_id,
        {"id": str(merged.id), "into": str(survivor.id)},
        merged.id,
    )
    await stage(session, [merged_event, conversation_updated(survivor)])
    return moved


def _combine(survivor: Conversation, merged: Conversation) -> None:
    """The survivor's row after the merge: both threads' counters and latest message."""
    if merged.last_message_at > survivor.last_message_at:
        survivor.last_message_at = merged.last_message_at
        survivor.last_message_preview = merged.last_message_preview
    inbound = [t for t in (survivor.last_inbound_at, merged.last_inbound_at) if t is not None]
    survivor.last_inbound_at = max(inbound, default=None)
    survivor.message_count += merged.message_count
    survivor.unread_count += merged.unread_count
    if merged.status == ConversationStatus.OPEN:
        survivor.status = ConversationStatus.OPEN
    survivor.assigned_user_id = survivor.assigned_user_id or merged.assigned_user_id
    survivor.team_id = survivor.team_id or merged.team_id
    survivor.is_paused = survivor.is_paused or merged.is_paused
    survivor.updated_at = utc_now()
