"""Users: a company's admins, supervisors and agents; inviting one and issuing a reset link (each
a one-time link to set a password, shown to the admin: no mail server needed)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond
from zapflow.api.routes.api_keys import forget_keys
from zapflow.models import User, UserRole, UserTokenKind
from zapflow.schemas.users import PasswordLink, UserCreate, UserInvite, UserPublic, UserUpdate
from zapflow.services import user_sessions
from zapflow.services import users as service
from zapflow.services.auth import Principal
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/users", tags=["users"])


UserFields = Annotated[frozenset[str] | None, Depends(fields_param(UserPublic))]


@router.get(
    "",
    summary="List the company's users, newest first",
    response_model=CursorPage[UserPublic],
    dependencies=[Requires(Permission.USERS_READ)],
)
async def list_users(
    principal: CurrentPrincipal,
    session: SessionDep,
    fields: UserFields,
    role: Annotated[UserRole | None, Query(description="Only this role")] = None,
    is_active: Annotated[bool | None, Query(description="Only active (or inactive) users")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    rows, next_cursor = await service.page_users(
        session, principal.company_id, limit, cursor, role=role, is_active=is_active
    )
    page = CursorPage[UserPublic].of(rows, next_cursor)
    return respond(page, fields)


@router.post(
    "",
    status_code=201,
    summary="Add a user",
    response_model=UserPublic,
    responses={409: {"description": "another user of the company has this e-mail"}},
    dependencies=[Requires(Permission.USERS_MANAGE)],
)
async def create_user(body: UserCreate, principal: CurrentPrincipal, session: SessionDep) -> Any:
    user = await service.create_user(session, principal.company_id, body.model_dump())
    return UserPublic.model_validate(user)


def _link(
    request: Request, state: StateDep, user: User, new: user_sessions.NewLink
) -> PasswordLink:
    base = (state.settings.public_url or str(request.base_url)).rstrip("/")
    return PasswordLink(
        user=UserPublic.model_validate(user),
        kind=new.row.kind,
        # in the fragment: browsers send no fragment to any server, so no access log keeps it
        link=f"{base}/app/#/accept/{new.token}",
        expires_at=new.row.expires_at,
    )


@router.post(
    "/invites",
    status_code=201,
    summary="Invite a person: a new user and a one-time link to set their password",
    response_model=PasswordLink,
    responses={409: {"description": "another user of the company has this e-mail"}},
)
async def invite_user(
    body: UserInvite,
    request: Request,
    principal: Annotated[Principal, Requires(Permission.USERS_MANAGE)],
    session: SessionDep,
    state: StateDep,
) -> PasswordLink:
    user = await service.create_user(session, principal.company_id, body.model_dump())
    new = await user_sessions.issue_link(session, user, UserTokenKind.INVITE, principal.user_id)
    return _link(request, state, user, new)


@router.post(
    "/{user_id}/reset-link",
    status_code=201,
    summary="A one-time link for the user to choose a new password (using it ends their sessions)",
    response_model=PasswordLink,
)
async def issue_reset_link(
    user_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, Requires(Permission.USERS_MANAGE)],
    session: SessionDep,
    state: StateDep,
) -> PasswordLink:
    user = await service.get_user(session, principal.company_id, user_id)
    new = await user_sessions.issue_link(session, user, UserTokenKind.RESET, principal.user_id)
    return _link(request, state, user, new)


@router.get(
    "/{user_id}",
    summary="Get a user",
    response_model=UserPublic,
    dependencies=[Requires(Permission.USERS_READ)],
)
async def get_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, fields: UserFields
) -> Any:
    user = await service.get_user(session, principal.company_id, user_id)
    return respond(UserPublic.model_validate(user), fields)


@router.patch(
    "/{user_id}",
    summary="Change a user's e-mail, name or role, or (de)activate it",
    response_model=UserPublic,
    responses={409: {"description": "e-mail taken, or you would demote or deactivate yourself"}},
    dependencies=[Requires(Permission.USERS_MANAGE)],
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
) -> Any:
    user = await service.get_user(session, principal.company_id, user_id)
    changes = body.model_dump(exclude_unset=True)
    await service.update_user(session, user, changes, principal)
    if {"role", "is_active"} & changes.keys():
        forget_keys(session, state, await service.key_hashes(session, user.id))
    return UserPublic.model_validate(user)


@router.delete(
    "/{user_id}",
    status_code=204,
    summary="Delete a user and its API keys",
    responses={409: {"description": "you cannot delete yourself"}},
    dependencies=[Requires(Permission.USERS_MANAGE)],
)
async def delete_user(
    user_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
) -> Response:
    user = await service.get_user(session, principal.company_id, user_id)
    key_hashes = await service.key_hashes(session, user.id)
    await service.delete_user(session, user, principal)
    forget_keys(session, state, key_hashes)
    return Response(status_code=204)
