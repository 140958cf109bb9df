"""Users: a company's admins, supervisors and agents; inviting one and issuing a reset link (each
a one-time link to set a password, shown to the admin: no mail server needed)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond
from zapflow.api.routes.api_keys import forget_keys
from zapflow.api.validation import NotNull
from zapflow.models import User, UserRole, UserTokenKind
from zapflow.services import user_sessions
from zapflow.services import users as service
from zapflow.services.auth import Principal
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/users", tags=["users"])

Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "ana@acme.com", "name": "Ana Souza", "role": "agent"}]
        },
    )

    email: Email = Field(description="Stored lower-cased; unique within the company")
    name: Name
    role: UserRole = UserRole.AGENT
    is_active: bool = True


class UserUpdate(BaseModel):
    """Only the fields sent change; none may be ``null``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"role": "admin"}, {"is_active": False}]},
    )

    email: Annotated[Email | None, NotNull] = None
    name: Annotated[Name | None, NotNull] = None
    role: Annotated[UserRole | None, NotNull] = None
    is_active: Annotated[bool | None, NotNull] = Field(
        None, description="false: the user's API keys stop working"
    )


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: UserRole
    is_active: bool
    created_at: datetime


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


class UserInvite(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "bia@acme.com", "name": "Bia Lima", "role": "supervisor"}]
        },
    )

    email: Email
    name: Name
    role: UserRole = UserRole.AGENT


class PasswordLink(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user": {
                        "id": "0b6f3c2e-8f55-4c1e-9d0a-5e2f7a1b9c44",
                        "email": "bia@acme.com",
                        "name": "Bia Lima",
                        "role": "supervisor",
                        "is_active": True,
                        "created_at": "2026-12-02T16:00:00Z",
                    },
                    "kind": "invite",
                    "link": "https://crm.acme.com/app/#/accept/k3Jx...",
                    "expires_at": "2026-12-09T16:00:00Z",
                }
            ]
        }
    )

    user: UserPublic
    kind: UserTokenKind
    link: str = Field(description="Shown once: hand it to the person; it works one time")
    expires_at: datetime


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
    summary="A one-time link for the user to choose a new password (their sessions end)",
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
