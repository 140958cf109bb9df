"""FastAPI dependencies: the request's session (commit on success), Redis, Temporal, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.api.state import AppState
from zapflow.config import Settings
from zapflow.temporal import TemporalConnection


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.zapflow
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


def get_redis(state: StateDep) -> Redis:
    return state.redis


def get_temporal(state: StateDep) -> TemporalConnection:
    return state.temporal


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
TemporalDep = Annotated[TemporalConnection, Depends(get_temporal)]
