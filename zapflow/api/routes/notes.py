"""Notes on contacts and deals: list a subject's notes (newest first), write, edit, delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond
from zapflow.schemas.notes import NoteCreate, NotePublic, NoteUpdate
from zapflow.services import notes as service
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/notes", tags=["notes"])


NoteFields = Annotated[frozenset[str] | None, Depends(fields_param(NotePublic))]
ONE_SUBJECT: dict[int | str, dict[str, Any]] = {
    422: {"description": "not exactly one of contact_id, deal_id"}
}
CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "an agent changing someone else's note"}
}


@router.get(
    "",
    summary="Notes on a contact or a deal, newest first",
    response_model=CursorPage[NotePublic],
    responses={**ONE_SUBJECT, 404: {"description": "no such contact or deal"}},
    dependencies=[Requires(Permission.NOTES_READ)],
)
async def list_notes(
    principal: CurrentPrincipal,
    session: SessionDep,
    fields: NoteFields,
    contact_id: Annotated[uuid.UUID | None, Query(description="Notes on this contact")] = None,
    deal_id: Annotated[uuid.UUID | None, Query(description="Notes on this deal")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    field, subject_id = service.one_subject(contact_id, deal_id)
    rows, next_cursor = await service.page_notes(
        session, principal.company_id, field, subject_id, limit, cursor
    )
    page = CursorPage[NotePublic].of(rows, next_cursor)
    return respond(page, fields)


@router.post(
    "",
    status_code=201,
    summary="Write a note on a contact or a deal",
    response_model=NotePublic,
    responses={**ONE_SUBJECT, 404: {"description": "no such contact or deal (named)"}},
    dependencies=[Requires(Permission.NOTES_WRITE)],
)
async def create_note(body: NoteCreate, principal: CurrentPrincipal, session: SessionDep) -> Any:
    field, subject_id = service.one_subject(body.contact_id, body.deal_id)
    note = await service.create_note(session, principal, body.body, field, subject_id)
    return NotePublic.model_validate(note)


@router.get(
    "/{note_id}",
    summary="Get a note",
    response_model=NotePublic,
    dependencies=[Requires(Permission.NOTES_READ)],
)
async def get_note(
    note_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, fields: NoteFields
) -> Any:
    note = await service.get_note(session, principal.company_id, note_id)
    return respond(NotePublic.model_validate(note), fields)


@router.patch(
    "/{note_id}",
    summary="Edit a note (its author, or an admin)",
    response_model=NotePublic,
    responses=CHANGE_ERRORS,
    dependencies=[Requires(Permission.NOTES_WRITE)],
)
async def update_note(
    note_id: uuid.UUID, body: NoteUpdate, principal: CurrentPrincipal, session: SessionDep
) -> Any:
    note = await service.get_own_note(session, principal, note_id)
    await service.update_note(session, note, body.body)
    return NotePublic.model_validate(note)


@router.delete(
    "/{note_id}",
    status_code=204,
    summary="Delete a note (its author, or an admin)",
    responses=CHANGE_ERRORS,
    dependencies=[Requires(Permission.NOTES_WRITE)],
)
async def delete_note(
    note_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await service.delete_note(session, await service.get_own_note(session, principal, note_id))
    return Response(status_code=204)
