"""Async engine and session factory (asyncpg), and LISTEN for a queue's wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from zapflow.config import Settings

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        # no pre-ping (one more round trip per checkout): connections are recycled, and one that
        # died is invalidated by the error it raises; the caller's retry (an activity's, the
        # relay's next pass) gets a fresh one
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "zapflow"}},
    )


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    async with factory() as session, session.begin():
        yield session


async def listen_forever(settings: Settings, channel: str, wake: asyncio.Event) -> None:
    """Set ``wake`` on each NOTIFY on ``channel``, reconnecting forever; a queue's consumer
    sweeps as well, which covers any notification missed while disconnected."""
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    while True:
        try:
            connection = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(1)
            continue
        try:
            closed = asyncio.Event()
            connection.add_termination_listener(lambda *_, ended=closed: ended.set())
            await connection.add_listener(channel, lambda *_: wake.set())
            await closed.wait()
        finally:
            with contextlib.suppress(Exception):
                await connection.close()
