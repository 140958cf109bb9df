"""Companies' credentials: API keys (only a sha256 kept; issued, listed, revoked), authentication,
company creation."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.cache import Cache
from zapflow.db import SessionFactory, transaction
from zapflow.errors import Conflict, NotFound, Unauthorized, Unprocessable
from zapflow.models import ApiKey, Company, User, UserRole, utc_now
from zapflow.services.paging import cut_page, keyset
from zapflow.services.permissions import ROLE_RANK, Permission, role_can
from zapflow.services.queries import get_scoped

KEY_PREFIX = "zf_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


@dataclass(frozen=True)
class Principal:
    """Who is calling: every query of the request is scoped by ``company_id``."""

    company_id: uuid.UUID
    api_key_id: uuid.UUID | None  # None for a person signed in (``session_id``)
    role: UserRole
    key_hash: str = field(repr=False)  # re-checked by long requests (event streams)
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None  # a browser session (services/user_sessions.py)

    def can(self, permission: Permission) -> bool:
        return role_can(self.role, permission)

    @property
    def credential_id(self) -> uuid.UUID:
        """The API key or session the request came with (rate limits and stream slots)."""
        credential = self.session_id or self.api_key_id
        assert credential is not None
        return credential


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


async def issue_api_key(
    session: AsyncSession,
    company_id: uuid.UUID,
    name: str,
    role: UserRole,
    user_id: uuid.UUID | None,
) -> NewApiKey:
    """A key for the company, or for one of its active users (never above the user's role)."""
    if user_id is not None:
        try:
            user = await get_scoped(session, User, company_id, user_id)
        except NotFound:
            raise NotFound("user_id: no such user", details={"field": "user_id"}) from None
        if not user.is_active:
            raise Unprocessable("user_id: the user is deactivated", details={"field": "user_id"})
        if ROLE_RANK[role] > ROLE_RANK[user.role]:
            raise Unprocessable(
                f"role: a {user.role.value}'s key cannot be a {role.value} key",
                details={"field": "role"},
            )
    return await create_api_key(session, company_id, name, role, user_id)


async def page_api_keys(
    session: AsyncSession, company_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[ApiKey], str | None]:
    """Newest first, revoked ones included."""
    query = keyset(
        select(ApiKey).where(col(ApiKey.company_id) == company_id),
        [col(ApiKey.created_at), col(ApiKey.id)],
        (datetime, uuid.UUID),
        limit,
        cursor,
    )
    rows = list((await session.execute(query)).scalars())
    return cut_page(rows, limit, lambda k: (k.created_at, k.id))


async def revoke_api_key(
    session: AsyncSession, company_id: uuid.UUID, key_id: uuid.UUID, principal: Principal
) -> ApiKey:
    """Marks the key revoked (once: revoking again keeps the first time)."""
    key = await get_scoped(session, ApiKey, company_id, key_id)
    if key.id == principal.api_key_id:
        raise Conflict("you cannot revoke the key you are using: use another admin key")
    if key.revoked_at is None:
        key.revoked_at = utc_now()
        await session.flush()
    return key


async def create_company(session: AsyncSession, name: str) -> tuple[Company, NewApiKey]:
    """A company with its first admin API key."""
    company = Company(name=name)
    session.add(company)
    await session.flush()
    key = await create_api_key(session, company.id, "admin", UserRole.ADMIN)
    return company, key


def lesser_role(a: UserRole, b: UserRole) -> UserRole:
    return a if ROLE_RANK[a] <= ROLE_RANK[b] else b


def _usable_key(key_hash: str) -> Select[ApiKey, UserRole | None]:
    """The key if it is not revoked and its user (if it has one) is active, with the user's role."""
    return (
        select(ApiKey, col(User.role))
        .outerjoin(User, col(User.id) == col(ApiKey.user_id))
        .where(
            col(ApiKey.key_hash) == key_hash,
            col(ApiKey.revoked_at).is_(None),
            or_(col(ApiKey.user_id).is_(None), col(User.is_active)),
        )
    )


class Authenticator:
    """Resolves a bearer key to a ``Principal`` through the shared cache, so authentication
    usually costs no query (nor a session: one is opened only when the cache misses); revoking
    a key invalidates it in every process at once."""

    def __init__(self, cache: Cache, sessions: SessionFactory, ttl: int) -> None:
        self._cache = cache
        self._sessions = sessions
        # how long any process may honour a key after it was revoked when Redis cannot tell it
        # (the cache serves no value older than this); also bounds how stale `last_used_at` is
        self._ttl = ttl

    async def forget(self, key_hashes: Iterable[str]) -> None:
        await self._cache.invalidate(*(api_key_cache_key(h) for h in key_hashes))

    async def authenticate(self, plain: str | None) -> Principal:
        if not plain or not plain.startswith(KEY_PREFIX):
            raise Unauthorized("missing or malformed API key: send `Authorization: Bearer zf_...`")
        return await self.principal(hash_key(plain))

    async def principal(self, key_hash: str) -> Principal:
        """Who the key stands for now (Unauthorized once it is revoked or its user is gone)."""

        async def load() -> dict[str, str | None]:
            async with transaction(self._sessions) as session:
                found = (await session.execute(_usable_key(key_hash))).one_or_none()
                if found is None:
                    raise Unauthorized("invalid or revoked API key")  # never cached
                row, user_role = found
                await self._touch(session, row)
            # a key never grants more than its user may do: demoting the user demotes the key
            role = lesser_role(row.role, user_role) if user_role else row.role
            return {
                "company_id": str(row.company_id),
                "api_key_id": str(row.id),
                "role": role.value,
                "user_id": str(row.user_id) if row.user_id else None,
            }

        cached = await self._cache.get(api_key_cache_key(key_hash), self._ttl, load)
        return Principal(
            company_id=uuid.UUID(cached["company_id"]),
            api_key_id=uuid.UUID(cached["api_key_id"]),
            role=UserRole(cached["role"]),
            key_hash=key_hash,
            user_id=uuid.UUID(cached["user_id"]) if cached["user_id"] else None,
        )

    @staticmethod
    async def _touch(session: AsyncSession, row: ApiKey) -> None:
        now = utc_now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            await session.execute(
                update(ApiKey).where(col(ApiKey.id) == row.id).values(last_used_at=now)
            )
