"""FastAPI dependencies: the request's session (commit on success), Redis, Temporal, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.api.ratelimit import enforce as enforce_rate_limit
from zapflow.api.session_auth import session_principal
from zapflow.api.state import AppState
from zapflow.config import Settings
from zapflow.db import run_after_commit
from zapflow.egress import EgressPolicy, egress_policy
from zapflow.errors import Forbidden
from zapflow.services.auth import Principal
from zapflow.services.permissions import Permission
from zapflow.temporal import TemporalConnection


def state_of(request: Request) -> AppState:
    """The app's state, for a route that declares no dependency for it."""
    state: AppState = request.app.state.zapflow
    return state


async def get_state(request: Request) -> AppState:
    return state_of(request)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        await run_after_commit(session)  # before the response: see SessionDep


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


async def get_egress(state: StateDep) -> EgressPolicy:
    return egress_policy(state.settings.egress_allowed)


async def get_temporal(state: StateDep) -> TemporalConnection:
    return state.temporal


# scope="function": commit before the response is sent, so a client that got its 2xx can rely on
# the write (the default "request" scope would commit after sending, and keep the session open for
# the life of a streamed response)
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EgressDep = Annotated[EgressPolicy, Depends(get_egress)]
TemporalDep = Annotated[TemporalConnection, Depends(get_temporal)]


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer zf_...`")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # no request session: a cached key costs no query, and a route that reads through the
    # driver pool (the inbox page) then opens no session at all. The state is read, not
    # declared: FastAPI walks this dependency's own ones again wherever it is declared.
    state = state_of(request)
    person = None if credentials else await session_principal(request, state)
    if person is not None:
        principal = person
    else:
        plain = credentials.credentials if credentials else None
        principal = await state.authenticator.authenticate(plain)
    await enforce_rate_limit(request, state, principal)
    return principal


# The caller, for a route's parameters and helpers; what it may do is the route's `Requires(...)`.
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


class Requirement:
    """The caller, authenticated and rate limited, if its role holds ``permission``; else a 403
    naming the permission."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        if not principal.can(self.permission):
            raise Forbidden(
                f"a {principal.role.value} cannot do this: it needs the "
                f"{self.permission.value} permission",
                details={"permission": self.permission.value, "role": principal.role.value},
            )
        return principal


def Requires(permission: Permission) -> params.Depends:
    """A route's permission, declared with the route: ``principal: Annotated[Principal,
    Requires(Permission.FLOWS_WRITE)]``, or ``dependencies=[Requires(...)]`` when the route does
    not use the principal. Every API route declares exactly one (``tests/test_tenancy_matrix.py``
    walks them)."""
    return Depends(Requirement(permission))
