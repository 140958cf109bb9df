"""Companies' credentials: API keys (only a sha256 kept), authentication, company creation."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Unauthorized
from zapflow.models import ApiKey, Company, UserRole, utc_now

KEY_PREFIX = "zf_"
AUTH_CACHE_SECONDS = 30.0
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: every query of the request is scoped by ``company_id``."""

    company_id: uuid.UUID
    api_key_id: uuid.UUID
    role: UserRole
    user_id: uuid.UUID | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN


@dataclass(frozen=True)
class NewApiKey:
    row: ApiKey
    plain: str  # shown once, never stored


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession,
    company_id: uuid.UUID,
    name: str,
    role: UserRole = UserRole.AGENT,
    user_id: uuid.UUID | None = None,
) -> NewApiKey:
    prefix = KEY_PREFIX + secrets.token_hex(4)
    plain = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        company_id=company_id,
        user_id=user_id,
        name=name,
        prefix=prefix,
        key_hash=hash_key(plain),
        role=role,
    )
    session.add(row)
    await session.flush()
    return NewApiKey(row=row, plain=plain)


async def create_company(session: AsyncSession, name: str) -> tuple[Company, NewApiKey]:
    """A company with its first admin API key."""
    company = Company(name=name)
    session.add(company)
    await session.flush()
    key = await create_api_key(session, company.id, "admin", UserRole.ADMIN)
    return company, key


class Authenticator:
    """Resolves a bearer key to a ``Principal``; remembers hits briefly so auth costs no query."""

    def __init__(self, ttl: float = AUTH_CACHE_SECONDS) -> None:
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal]] = {}

    def forget(self, key_hash: str | None = None) -> None:
        if key_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(key_hash, None)

    async def authenticate(self, session: AsyncSession, plain: str | None) -> Principal:
        if not plain or not plain.startswith(KEY_PREFIX):
            raise Unauthorized("missing or malformed API key: send `Authorization: Bearer zf_...`")
        key_hash = hash_key(plain)
        cached = self._cache.get(key_hash)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        row = (
            await session.execute(
                select(ApiKey).where(
                    col(ApiKey.key_hash) == key_hash, col(ApiKey.revoked_at).is_(None)
                )
            )
        ).scalar_one_or_none()
        if row is None:
            raise Unauthorized("invalid or revoked API key")
        await self._touch(session, row)
        principal = Principal(row.company_id, row.id, row.role, row.user_id)
        self._cache[key_hash] = (time.monotonic() + self._ttl, principal)
        return principal

    @staticmethod
    async def _touch(session: AsyncSession, row: ApiKey) -> None:
        now = utc_now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            await session.execute(
                update(ApiKey).where(col(ApiKey.id) == row.id).values(last_used_at=now)
            )
