"""FastAPI dependencies: the request's session (commit on success), Redis, Temporal, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.api.ratelimit import enforce as enforce_rate_limit
from zapflow.api.state import AppState
from zapflow.config import Settings
from zapflow.egress import EgressPolicy, egress_policy
from zapflow.errors import Forbidden
from zapflow.services.auth import Principal
from zapflow.services.events import Event, publish_outbox, stage
from zapflow.services.permissions import Permission
from zapflow.temporal import TemporalConnection


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.zapflow
    return state


StateDep = Annotated[AppState, Depends(get_state)]


AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` once the request's transaction has committed (before the response)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        for callback in session.info.pop(AFTER_COMMIT, []):
            await callback()


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


async def get_egress(state: StateDep) -> EgressPolicy:
    return egress_policy(state.settings.egress_allowed)


async def get_redis(state: StateDep) -> Redis:
    return state.redis


async def get_temporal(state: StateDep) -> TemporalConnection:
    return state.temporal


# scope="function": commit before the response is sent, so a client that got its 2xx can rely on
# the write (the default "request" scope would commit after sending, and keep the session open for
# the life of a streamed response)
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EgressDep = Annotated[EgressPolicy, Depends(get_egress)]
RedisDep = Annotated[Redis, Depends(get_redis)]
TemporalDep = Annotated[TemporalConnection, Depends(get_temporal)]


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer zf_...`")


async def get_principal(
    request: Request,
    state: StateDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    plain = credentials.credentials if credentials else None
    principal = await state.authenticator.authenticate(session, plain)
    # hand the connection back before the rate limit's cache miss takes one of its own: holding
    # one while waiting for a second deadlocks the pool under a burst of new clients
    await session.commit()
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


class EventPublisher:
    """Stages live events in the request's transaction; publishes them once the response is out
    (after the commit), so a client never hears of a change it cannot read yet."""

    def __init__(self, session: AsyncSession, state: AppState, background: BackgroundTasks) -> None:
        self._session = session
        self._state = state
        self._background = background

    async def emit(self, *events: Event) -> None:
        ids = await stage(self._session, events)
        self._background.add_task(publish_outbox, self._state.sessions, self._state.redis, ids)


async def get_publisher(
    session: SessionDep, state: StateDep, background: BackgroundTasks
) -> EventPublisher:
    return EventPublisher(session, state, background)


PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
