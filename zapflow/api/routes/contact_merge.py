"""Merging duplicate contacts under /api/v1/contacts: the suggested pairs and the merge (or its
preview). Registered before the contacts router, so ``/contacts/duplicates`` is not read as an
id."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.services.contact_merge import find_duplicates, merge_contacts
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/contacts", tags=["contacts"])


class MergeRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"contact_id": "8f0c2a4e-3b1d-4c55-9a77-1f2e3d4c5b6a", "take": ["email"]},
                {"contact_id": "8f0c2a4e-3b1d-4c55-9a77-1f2e3d4c5b6a", "preview": True},
            ]
        },
    )

    contact_id: uuid.UUID = Field(description="The contact merged into this one (then deleted)")
    take: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="Fields whose merged value wins a conflict: name, email, phone_number, lid, "
        "custom_fields.<key>; the survivor's value wins the others",
    )
    preview: bool = Field(False, description="Report what would happen, change nothing")


class MergeResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "merge_id": "0b7e1c2d-4a5f-4e6b-8c9d-0e1f2a3b4c5d",
                    "survivor_id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                    "merged_id": "8f0c2a4e-3b1d-4c55-9a77-1f2e3d4c5b6a",
                    "moved": {"conversations": 1, "messages": 12, "deals": 1, "notes": 2},
                    "conflicts": [
                        {"field": "email", "survivor": "a@x.com", "merged": "b@x.com",
                         "kept": "survivor"}
                    ],
                    "contact": {"name": "Maria Souza"},
                    "preview": False,
                }
            ]
        }
    )  # fmt: skip

    merge_id: uuid.UUID | None
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    moved: dict[str, int]
    conflicts: list[dict[str, Any]]
    contact: dict[str, Any]
    preview: bool


class DuplicatePair(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "contact_id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                    "other_id": "8f0c2a4e-3b1d-4c55-9a77-1f2e3d4c5b6a",
                    "reason": "name_and_phone_suffix",
                }
            ]
        }
    )

    contact_id: uuid.UUID
    other_id: uuid.UUID
    reason: str


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
