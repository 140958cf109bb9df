"""Canned responses: saved replies an agent expands in the composer by typing ``/shortcut``.
The company's (``user_id`` NULL, managed by supervisors and admins) and each user's own; a
user's own shortcut shadows the company's of the same name. Variables (``{{contact.name}}``)
are filled in by the composer, which knows the conversation's contact. A response with reply
buttons is sent by the composer as an interactive button message (its text the message's body,
so held to the interactive body's limit here, whichever field a change touches)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from zapflow.errors import Conflict, Forbidden, NotFound, Unprocessable
from zapflow.models import CannedResponse
from zapflow.services.auth import Principal
from zapflow.services.permissions import Permission
from zapflow.services.queries import get_scoped
from zapflow.whatsapp.interactive import BODY_MAX

LIST_LIMIT = 500


async def list_canned_responses(
    session: AsyncSession, principal: Principal
) -> list[CannedResponse]:
    """The company's and the caller's own, by shortcut (own first on a tie)."""
    scope: ColumnElement[bool] = col(CannedResponse.user_id).is_(None)
    if principal.user_id is not None:
        scope = or_(scope, col(CannedResponse.user_id) == principal.user_id)
    rows = await session.execute(
        select(CannedResponse)
        .where(col(CannedResponse.company_id) == principal.company_id, scope)
        .order_by(col(CannedResponse.shortcut), col(CannedResponse.user_id).nulls_last())
        .limit(LIST_LIMIT)
    )
    return list(rows.scalars())


def _check_scope(principal: Principal, company_wide: bool) -> uuid.UUID | None:
    """The owner a new or changed response gets; the company's need ``canned:manage``."""
    if company_wide or principal.user_id is None:
        if not principal.can(Permission.CANNED_MANAGE):
            raise Forbidden(
                "only a supervisor or an admin can change the company's canned responses",
                details={"permission": Permission.CANNED_MANAGE.value},
            )
        return None
    return principal.user_id


def _check_body_fits_buttons(row: CannedResponse) -> None:
    if row.buttons and len(row.body) > BODY_MAX:
        raise Unprocessable(
            f"body: a response with buttons is an interactive message's body, at most "
            f"{BODY_MAX} characters",
            details={"field": "body", "limit": BODY_MAX},
        )


async def _flush_unique(session: AsyncSession, row: CannedResponse) -> None:
    _check_body_fits_buttons(row)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            "shortcut: this scope has a canned response with this shortcut already",
            details={"field": "shortcut"},
        ) from None


async def create_canned_response(
    session: AsyncSession, principal: Principal, fields: dict[str, Any]
) -> CannedResponse:
    owner = _check_scope(principal, fields.pop("company_wide"))
    row = CannedResponse(company_id=principal.company_id, user_id=owner, **fields)
    session.add(row)
    await _flush_unique(session, row)
    return row


async def get_own_canned_response(
    session: AsyncSession, principal: Principal, canned_id: uuid.UUID
) -> CannedResponse:
    """The response, if the caller may change it: its owner's own, or the company's for those
    who manage them. Another user's own response is not even seen (404)."""
    try:
        row = await get_scoped(session, CannedResponse, principal.company_id, canned_id)
    except NotFound:
        raise NotFound("canned response not found") from None
    if row.user_id is not None and row.user_id != principal.user_id:
        raise NotFound("canned response not found")
    _check_scope(principal, row.user_id is None)
    return row


async def update_canned_response(
    session: AsyncSession, row: CannedResponse, changes: dict[str, Any]
) -> None:
    for name, value in changes.items():
        setattr(row, name, value)
    await _flush_unique(session, row)


async def delete_canned_response(session: AsyncSession, row: CannedResponse) -> None:
    await session.delete(row)
    await session.flush()
