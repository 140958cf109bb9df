"""Canned responses: the company's and one's own saved replies (``/shortcut`` in the composer)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from zapflow.api.deps import CurrentPrincipal, EgressDep, Requires, SessionDep
from zapflow.api.validation import check_media_url
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


def _checked(egress: EgressDep, attachments: list[MediaIn] | None) -> None:
    for n, media in enumerate(attachments or []):
        check_media_url(egress, media.url, f"attachments.{n}.url")


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
    _checked(egress, body.attachments)
    return await service.create_canned_response(session, principal, body.model_dump(mode="json"))


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
    _checked(egress, body.attachments)
    row = await service.get_own_canned_response(session, principal, canned_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
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
