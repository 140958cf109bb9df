"""System notes: the lines a conversation's thread shows for what happened to it (assigned,
unassigned, transferred to a team, an SLA breached), written by the operation that did it, in
its transaction, and announced live as ``system_note.created``."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import Conversation, SystemNote, SystemNoteKind
from zapflow.schemas.system_notes import SystemNotePublic
from zapflow.services.events import Event, stage

NOTES_PER_THREAD = 500  # the newest; a thread shows them beside its messages


async def add(
    session: AsyncSession,
    conversation: Conversation,
    kind: SystemNoteKind,
    *,
    actor_user_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> SystemNote:
    note = SystemNote(
        company_id=conversation.company_id,
        conversation_id=conversation.id,
        kind=kind,
        actor_user_id=actor_user_id,
        user_id=user_id,
        team_id=team_id,
        detail=detail,
    )
    session.add(note)
    await session.flush()
    data = SystemNotePublic.model_validate(note).model_dump(mode="json")
    event = Event("system_note.created", conversation.company_id, data, conversation.id)
    await stage(session, [event])
    return note


async def list_notes(
    session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[SystemNote]:
    """The conversation's newest notes, oldest first."""
    rows = await session.execute(
        select(SystemNote)
        .where(
            col(SystemNote.company_id) == company_id,
            col(SystemNote.conversation_id) == conversation_id,
        )
        .order_by(col(SystemNote.created_at).desc(), col(SystemNote.id).desc())
        .limit(NOTES_PER_THREAD)
    )
    return list(reversed(rows.scalars().all()))
