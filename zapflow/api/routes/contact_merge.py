"""Merging duplicate contacts under /api/v1/contacts: the suggested pairs and the merge (or its
preview). Registered before the contacts router, so ``/contacts/duplicates`` is not read as an
id."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.schemas.contacts import DuplicatePair, MergeRequest, MergeResult
from zapflow.services.contact_merge import find_duplicates, merge_contacts
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.get(
    "/duplicates",
    summary="Pairs of contacts that look like one person",
    response_model=list[DuplicatePair],
    dependencies=[Requires(Permission.CONTACTS_READ)],
)
async def list_duplicates(principal: CurrentPrincipal, session: SessionDep) -> Any:
    return await find_duplicates(session, principal.company_id)


@router.post(
    "/{contact_id}/merge",
    summary="Merge another contact into this one (conversations, deals, notes, follow-ups...)",
    response_model=MergeResult,
    responses={404: {"description": "Either contact is not in your company"}},
    dependencies=[Requires(Permission.CONTACTS_MERGE)],
)
async def merge(
    contact_id: uuid.UUID, body: MergeRequest, principal: CurrentPrincipal, session: SessionDep
) -> MergeResult:
    async with session.begin_nested() as savepoint:
        report = await merge_contacts(
            session, principal.company_id, contact_id, body.contact_id,
            frozenset(body.take), principal.user_id,
        )  # fmt: skip
        if body.preview:
            await savepoint.rollback()
    return MergeResult(
        merge_id=None if body.preview else report.merge_id,
        survivor_id=report.survivor_id,
        merged_id=report.merged_id,
        moved=report.moved,
        conflicts=report.conflicts,
        contact=report.contact,
        preview=body.preview,
    )
