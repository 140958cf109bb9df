"""A contact's opt-out from broadcasts: read it, record it, lift it. (Customers also opt out by
writing one of the company's keywords: services/opt_outs.py.)"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.schemas.opt_outs import OptOutIn, OptOutPublic
from zapflow.services import opt_outs as service
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/contacts/{contact_id}/opt-out", tags=["contacts"])


@router.get(
    "",
    summary="Whether the contact opted out of broadcasts, how and when",
    response_model=OptOutPublic,
    dependencies=[Requires(Permission.CONTACTS_READ)],
)
async def get_opt_out(
    contact_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> OptOutPublic:
    found = await service.get_opt_out(session, principal.company_id, contact_id)
    if found is None:
        return OptOutPublic(contact_id=contact_id, opted_out=False)
    return OptOutPublic(
        contact_id=contact_id,
        opted_out=True,
        source=found.source,
        reason=found.reason,
        created_at=found.created_at,
    )


@router.put(
    "",
    summary="Opt the contact out of broadcasts",
    status_code=204,
    dependencies=[Requires(Permission.OPT_OUTS_MANAGE)],
)
async def opt_out(
    contact_id: uuid.UUID, body: OptOutIn, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await service.opt_out(session, principal.company_id, contact_id, "api", body.reason)
    return Response(status_code=204)


@router.delete(
    "",
    summary="Lift the contact's opt-out",
    status_code=204,
    dependencies=[Requires(Permission.OPT_OUTS_MANAGE)],
)
async def opt_in(
    contact_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await service.opt_in(session, principal.company_id, contact_id)
    return Response(status_code=204)
