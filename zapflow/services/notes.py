"""Notes on a contact or a deal: written by an agent, edited by its author or an admin."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from zapflow.errors import Forbidden, NotFound, Unprocessable
from zapflow.models import Contact, Deal, Note
from zapflow.services.auth import Principal
from zapflow.services.paging import cut_page, keyset
from zapflow.services.permissions import Permission
from zapflow.services.queries import get_scoped

Subject = Literal["contact_id", "deal_id"]  # what a note is about: exactly one of them
SUBJECTS: dict[Subject, type[SQLModel]] = {"contact_id": Contact, "deal_id": Deal}


def one_subject(
    contact_id: uuid.UUID | None, deal_id: uuid.UUID | None
) -> tuple[Subject, uuid.UUID]:
    """Which of ``contact_id`` and ``deal_id`` was given (422 unless exactly one)."""
    if contact_id is not None and deal_id is None:
        return "contact_id", contact_id
    if deal_id is not None and contact_id is None:
        return "deal_id", deal_id
    raise Unprocessable(
        "contact_id, deal_id: give exactly one of them",
        details={"fields": ["contact_id", "deal_id"]},
    )


async def check_subject(
    session: AsyncSession, company_id: uuid.UUID, field: Subject, subject_id: uuid.UUID
) -> None:
    """The contact or deal a note is about exists in the company (404 naming the field)."""
    try:
        await get_scoped(session, SUBJECTS[field], company_id, subject_id)
    except NotFound:
        name = SUBJECTS[field].__name__.lower()
        raise NotFound(f"{field}: no such {name}", details={"field": field}) from None


async def create_note(
    session: AsyncSession, principal: Principal, body: str, field: Subject, subject_id: uuid.UUID
) -> Note:
    await check_subject(session, principal.company_id, field, subject_id)
    note = Note(company_id=principal.company_id, author_user_id=principal.user_id, body=body)
    setattr(note, field, subject_id)
    session.add(note)
    await session.flush()
    return note


async def page_notes(
    session: AsyncSession,
    company_id: uuid.UUID,
    field: Subject,
    subject_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[list[Note], str | None]:
    """The subject's notes, newest first."""
    await check_subject(session, company_id, field, subject_id)
    query = keyset(
        select(Note).where(
            col(Note.company_id) == company_id, col(getattr(Note, field)) == subject_id
        ),
        [col(Note.created_at), col(Note.id)],
        (datetime, uuid.UUID),
        limit,
        cursor,
    )
    rows = list((await session.execute(query)).scalars())
    return cut_page(rows, limit, lambda n: (n.created_at, n.id))


async def get_note(session: AsyncSession, company_id: uuid.UUID, note_id: uuid.UUID) -> Note:
    return await get_scoped(session, Note, company_id, note_id)


async def get_own_note(session: AsyncSession, principal: Principal, note_id: uuid.UUID) -> Note:
    """The note, if the caller may change it: its author, or whoever may manage notes."""
    note = await get_note(session, principal.company_id, note_id)
    if not principal.can(Permission.NOTES_MANAGE) and (
        principal.user_id is None or note.author_user_id != principal.user_id
    ):
        raise Forbidden(
            "only the note's author or an admin can change it",
            details={"permission": Permission.NOTES_MANAGE.value},
        )
    return note


async def update_note(session: AsyncSession, note: Note, body: str) -> None:
    note.body = body
    await session.flush()


async def delete_note(session: AsyncSession, note: Note) -> None:
    await session.delete(note)
    await session.flush()
