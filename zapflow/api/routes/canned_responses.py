"""Canned responses: the company's and one's own saved replies (``/shortcut`` in the composer)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from zapflow.api.deps import CurrentPrincipal, EgressDep, Requires, SessionDep
from zapflow.api.validation import checked_media
from zapflow.schemas.canned_responses import (
    CannedResponseCreate,
    CannedResponsePublic,
    CannedResponseUpdate,
)
from zapflow.schemas.messages import MediaIn
from zapflow.services import canned_responses as service
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/canned-responses", tags=["canned responses"])
MINE_OR_MANAGED: dict[int | str, dict[str, Any]] = {
    403: {"description": "the company's canned responses need canned:manage"},
    404: {"description": "no such canned response of yours or your company's"},
    409: {"description": "the scope has this shortcut already"},
    422: {
        "description": "a field is invalid (an attachment's URL the egress policy refuses, "
        "buttons beyond WhatsApp's limits, a text over 1024 characters with buttons)"
    },
}


async def _stored(
    egress: EgressDep, session: SessionDep, principal: CurrentPrincipal, attachments: list[MediaIn]
) -> list[dict[str, Any]]:
    """The attachments as stored: URLs checked, uploaded files found and described."""
    return [
        await checked_media(egress, session, principal.company_id, media, f"attachments.{n}")
        for n, media in enumerate(attachments)
    ]


@router.get(
    "",
    summary="The company's canned responses and your own, by shortcut",
    response_model=list[CannedResponsePublic],
    dependencies=[Requires(Permission.CANNED_READ)],
)
async def list_canned_responses(principal: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.list_canned_responses(session, principal)


@router.post(
    "",
    status_code=201,
    summary="Save a canned response (yours, or the company's with company_wide)",
    response_model=CannedResponsePublic,
    responses=MINE_OR_MANAGED,
    dependencies=[Requires(Permission.CANNED_WRITE)],
)
async def create_canned_response(
    body: CannedResponseCreate, principal: CurrentPrincipal, session: SessionDep, egress: EgressDep
) -> Any:
    fields = body.model_dump(mode="json")
    fields["attachments"] = await _stored(egress, session, principal, body.attachments)
    return await service.create_canned_response(session, principal, fields)


@router.patch(
    "/{canned_id}",
    summary="Change a canned response's shortcut, text, attachments or buttons",
    response_model=CannedResponsePublic,
    responses=MINE_OR_MANAGED,
    dependencies=[Requires(Permission.CANNED_WRITE)],
)
async def update_canned_response(
    canned_id: uuid.UUID,
    body: CannedResponseUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    egress: EgressDep,
) -> Any:
    row = await service.get_own_canned_response(session, principal, canned_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
    if body.attachments is not None:
        changes["attachments"] = await _stored(egress, session, principal, body.attachments)
    await service.update_canned_response(session, row, changes)
    return row


@router.delete(
    "/{canned_id}",
    status_code=204,
    summary="Delete a canned response",
    responses=MINE_OR_MANAGED,
    dependencies=[Requires(Permission.CANNED_WRITE)],
)
async def delete_canned_response(
    canned_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    row = await service.get_own_canned_response(session, principal, canned_id)
    await service.delete_canned_response(session, row)
    return Response(status_code=204)
