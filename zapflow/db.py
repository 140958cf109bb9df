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


def create_engine(
    settings: Settings, *, pool_size: int | None = None, pre_ping: bool = True
) -> AsyncEngine:
    """``pre_ping=False`` saves a round trip per checkout where every caller retries (the
    worker: activities, the relay's passes): a connection that died (Postgres restarted) fails
    once, SQLAlchemy then invalidates the pool, and the retry gets a fresh connection."""
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_pre_ping=pre_ping,
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
