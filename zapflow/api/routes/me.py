"""The caller's own account: who it is and what it may do (the UI shows and hides by it), its
availability for routing, its password, and its browser sessions (sign out, list, revoke)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.session_auth import clear_session_cookie, session_token
from zapflow.errors import Unprocessable
from zapflow.models import Availability, User
from zapflow.schemas.user_sessions import Me, MeUpdate, MeUser, PasswordChange, SessionPublic
from zapflow.services import routing, user_sessions
from zapflow.services.auth import Principal
from zapflow.services.permissions import ROLE_PERMISSIONS, Permission
from zapflow.services.queries import get_scoped

router = APIRouter(prefix="/me", tags=["me"])
OWN = Requires(Permission.ACCOUNT_OWN)


def me_of(user: User, session_id: uuid.UUID | None, csrf: str | None) -> Me:
    return Me(
        company_id=user.company_id,
        role=user.role,
        permissions=sorted(ROLE_PERMISSIONS[user.role]),
        user=MeUser.model_validate(user),
        session_id=session_id,
        csrf_token=csrf,
    )


async def _user(session: SessionDep, principal: Principal) -> User | None:
    if principal.user_id is None:
        return None
    return await get_scoped(session, User, principal.company_id, principal.user_id)


@router.get("", summary="Who is calling, and what it may do", response_model=Me, dependencies=[OWN])
async def get_me(
    request: Request, principal: CurrentPrincipal, session: SessionDep, state: StateDep
) -> Me:
    token = session_token(request, state.settings) if principal.session_id else None
    csrf = user_sessions.csrf_token(token) if token else None
    user = await _user(session, principal)
    return Me(
        company_id=principal.company_id,
        role=principal.role,
        permissions=sorted(ROLE_PERMISSIONS[principal.role]),
        user=MeUser.model_validate(user) if user else None,
        session_id=principal.session_id,
        csrf_token=csrf,
    )


@router.patch("", summary="Set your availability", response_model=MeUser, dependencies=[OWN])
async def update_me(body: MeUpdate, principal: CurrentPrincipal, session: SessionDep) -> Any:
    user = await _user(session, principal)
    if user is None:
        raise Unprocessable("availability: a company key belongs to nobody")
    user.availability = body.availability
    await session.flush()
    if body.availability == Availability.AVAILABLE:  # their teams' queues may move now
        teams = await routing.member_teams(session, user.id)
        await routing.request_pass(session, principal.company_id, teams)
    return MeUser.model_validate(user)


@router.post(
    "/password",
    status_code=204,
    summary="Change your password (your other sessions end)",
    responses={422: {"description": "wrong current password, or a too short new one"}},
    dependencies=[OWN],
)
async def change_password(
    body: PasswordChange, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await user_sessions.change_password(
        session, principal, body.current_password, body.new_password
    )
    return Response(status_code=204)


@router.post(
    "/sign-out",
    status_code=204,
    summary="Sign out: this browser session ends and its cookie is cleared",
    responses={422: {"description": "called with an API key, not a session"}},
    dependencies=[OWN],
)
async def sign_out(principal: CurrentPrincipal, session: SessionDep, state: StateDep) -> Response:
    await user_sessions.end_session(session, principal)
    response = Response(status_code=204)
    clear_session_cookie(response, state.settings)
    return response


@router.get(
    "/sessions",
    summary="Your signed-in browsers, newest first",
    response_model=list[SessionPublic],
    dependencies=[OWN],
)
async def list_sessions(principal: CurrentPrincipal, session: SessionDep) -> Any:
    rows = await user_sessions.user_sessions(session, principal)
    return [
        SessionPublic.model_validate(row).model_copy(
            update={"current": row.id == principal.session_id}
        )
        for row in rows
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    summary="End one of your sessions (every API process refuses it at once)",
    responses={404: {"description": "no such session of yours"}},
    dependencies=[OWN],
)
async def revoke_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await user_sessions.revoke_session(session, principal, session_id)
    return Response(status_code=204)
