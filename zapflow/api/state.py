"""The clients one API process shares, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from zapflow.api.readiness import Readiness
from zapflow.api.stream_hub import StreamHub
from zapflow.cache import Cache, invalidate_on_commit
from zapflow.config import Settings
from zapflow.db import (
    DriverReads,
    SessionFactory,
    create_driver_pool,
    create_engine,
    session_factory,
)
from zapflow.embeddings import Embedders
from zapflow.redis import create_redis
from zapflow.services.auth import Authenticator
from zapflow.services.events import publish_on_commit
from zapflow.services.instances import WebhookInstances
from zapflow.services.oidc import OidcClient
from zapflow.services.user_sessions import SessionAuthenticator, SignInThrottle
from zapflow.temporal import TemporalConnection


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    driver_pool: asyncpg.Pool  # asyncpg without the ORM: the webhook's insert
    reads: DriverReads  # the hottest list reads, on driver_pool
    redis: Redis
    cache: Cache
    temporal: TemporalConnection
    authenticator: Authenticator
    session_auth: SessionAuthenticator  # people signed in to /app (api/session_auth.py)
    sign_in_throttle: SignInThrottle
    oidc: OidcClient | None  # sign-in with the operator's OpenID Connect provider, if configured
    webhook_instances: WebhookInstances
    embedders: Embedders  # a local model loads on its first use, not at start-up
    streams: StreamHub  # the SSE clients' shared readers of the companies' event streams
    readiness: Readiness  # /readyz's last check, shared by concurrent probes

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        # the API answers a request on a lost connection with 503; it saves 2 round trips
        engine = create_engine(settings, pre_ping=False)
        redis = create_redis(settings)
        driver_pool = create_driver_pool(settings)
        cache = Cache(redis)
        sessions = session_factory(engine)
        invalidate_on_commit(sessions, cache)
        publish_on_commit(sessions, redis)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            driver_pool=driver_pool,
            reads=DriverReads(driver_pool, engine.dialect),
            redis=redis,
            cache=cache,
            temporal=TemporalConnection(settings),
            authenticator=Authenticator(cache, sessions, settings.auth_cache_seconds),
            session_auth=SessionAuthenticator(cache, sessions, settings.auth_cache_seconds),
            sign_in_throttle=SignInThrottle(
                redis, settings.sign_in_failures_per_account, settings.sign_in_failures_per_ip
            ),
            oidc=OidcClient(settings, redis) if settings.oidc_issuer else None,
            webhook_instances=WebhookInstances(),
            embedders=Embedders(settings),
            streams=StreamHub(redis),
            readiness=Readiness(),
        )

    async def open(self) -> None:
        await self.driver_pool

    async def close(self) -> None:
        await self.driver_pool.close()
        await self.embedders.aclose()
        if self.oidc is not None:
            await self.oidc.aclose()
        await self.redis.aclose()
        await self.engine.dispose()
