"""People signed in to ``/app``: sign-in by e-mail and password (throttled per account and
client address), server-side sessions, their CSRF token, listing and revoking them, password
changes, and the one-time invite and reset links an admin hands out.

A session's token travels only in an HttpOnly cookie; the database keeps its sha256. Who a
token stands for is cached like an API key (``Authenticator``): revoking a session, or
deactivating its user, invalidates the cached copy in every API process through Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.cache import Cache, forget
from zapflow.db import SessionFactory, transaction
from zapflow.errors import Conflict, NotFound, TooManyRequests, Unauthorized, Unprocessable
from zapflow.models import User, UserRole, UserSession, UserToken, UserTokenKind, utc_now
from zapflow.services.auth import Principal, hash_key
from zapflow.services.passwords import check_strength, hash_password, verify_password

SIGN_IN_WINDOW_SECONDS = 15 * 60
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
LINK_LIFETIME = {UserTokenKind.INVITE: timedelta(days=7), UserTokenKind.RESET: timedelta(hours=24)}
WRONG = "wrong e-mail or password"


def session_cache_key(token_hash: str) -> str:
    return f"session:{token_hash}"


def csrf_token(token: str) -> str:
    """The session's CSRF token: derived from the cookie's secret, which scripts cannot read,
    so a request carrying it in a header comes from a page of ours that was told it."""
    return hmac.new(token.encode(), b"zapflow csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class NewSession:
    row: UserSession
    user: User
    token: str  # the cookie's value, never stored

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


@dataclass(frozen=True)
class Client:
    """Where a sign-in comes from (shown in the session list; the address is throttled)."""

    ip: str
    user_agent: str | None


class SignInThrottle:
    """Failed sign-ins counted in Redis per e-mail and per client address over 15 minutes: past
    the account's limit the account is locked (whatever the password) until the window ends or
    an admin's reset link is used; past the address's, that address is refused. Redis down:
    not throttled (argon2's cost still bounds guessing)."""

    def __init__(self, redis: Redis, per_account: int, per_ip: int) -> None:
        self._redis = redis
        self._limits = {"account": per_account, "ip": per_ip}

    @staticmethod
    def _keys(email: str, ip: str) -> dict[str, str]:
        return {"account": f"signin:account:{email}", "ip": f"signin:ip:{ip}"}

    async def check(self, email: str, ip: str) -> None:
        keys = self._keys(email, ip)
        try:
            counts = await self._redis.mget(list(keys.values()))
        except (RedisError, OSError):
            return
        for (scope, key), count in zip(keys.items(), counts, strict=True):
            if count is not None and int(count) >= self._limits[scope]:
                await self._refuse(scope, key)

    async def _refuse(self, scope: str, key: str) -> None:
        ttl = max(1, int(await self._redis.ttl(key)))
        minutes = -(-ttl // 60)
        message = (
            f"this account is locked after too many failed sign-ins: try again in {minutes} "
            "minutes, or ask an admin for a reset link"
            if scope == "account"
            else f"too many failed sign-ins from your address: try again in {minutes} minutes"
        )
        raise TooManyRequests(
            message,
            code="account_locked" if scope == "account" else "rate_limited",
            details={"scope": scope, "retry_after": ttl},
            headers={"Retry-After": str(ttl)},
        )

    async def failed(self, email: str, ip: str) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in self._keys(email, ip).values():
                    # the window starts at the first failure (EXPIRE NX needs Redis 7)
                    pipe.set(key, 0, ex=SIGN_IN_WINDOW_SECONDS, nx=True)
                    pipe.incr(key)
                await pipe.execute()
        except (RedisError, OSError):
            return

    async def succeeded(self, email: str) -> None:
        try:
            await self._redis.delete(self._keys(email, "")["account"])
        except (RedisError, OSError):
            return


async def active_users(
    session: AsyncSession, email: str, company_id: uuid.UUID | None
) -> list[User]:
    """The active users of an e-mail (lower-cased), in one company or any (a few at most)."""
    query = select(User).where(col(User.email) == email, col(User.is_active).is_(True))
    if company_id is not None:
        query = query.where(col(User.company_id) == company_id)
    return list((await session.execute(query.limit(5))).scalars())


async def authenticate_person(
    session: AsyncSession,
    throttle: SignInThrottle,
    email: str,
    password: str,
    company_id: uuid.UUID | None,
    ip: str,
) -> User:
    """The active user with this e-mail and password. An e-mail is unique per company: the same
    person in two companies names the company (``company_id``) when both passwords match."""
    email = email.strip().lower()
    await throttle.check(email, ip)
    users = await active_users(session, email, company_id)
    matching = [u for u in users if await verify_password(u.password_hash, password)]
    if not users:
        await verify_password(None, password)  # as long as a known e-mail takes
    if not matching:
        await throttle.failed(email, ip)
        raise Unauthorized(WRONG, code="wrong_credentials")
    if len(matching) > 1:
        raise Conflict(
            "company_id: this e-mail signs in to several companies; name one",
            details={
                "field": "company_id",
                "companies": sorted(str(u.company_id) for u in matching),
            },
        )
    await throttle.succeeded(email)
    return matching[0]


async def start_session(
    session: AsyncSession,
    user: User,
    client: Client,
    lifetime: timedelta,
    replacing: str | None = None,
) -> NewSession:
    """A new session with a fresh token (never one the browser brought: no fixation); the
    session the browser was still holding (``replacing``, its cookie) ends."""
    if replacing:
        await _revoke_where(session, col(UserSession.token_hash) == hash_key(replacing))
    token = secrets.token_urlsafe(32)
    row = UserSession(
        company_id=user.company_id,
        user_id=user.id,
        token_hash=hash_key(token),
        user_agent=(client.user_agent or "")[:300] or None,
        ip=client.ip[:64],
        expires_at=utc_now() + lifetime,
    )
    session.add(row)
    await session.flush()
    return NewSession(row=row, user=user, token=token)


async def _revoke_where(session: AsyncSession, *conditions: object) -> list[uuid.UUID]:
    """Revokes the live sessions matching; their cached copies go once the change commits."""
    revoked = await session.execute(
        update(UserSession)
        .where(col(UserSession.revoked_at).is_(None), *conditions)  # type: ignore[arg-type]
        .values(revoked_at=utc_now())
        .returning(col(UserSession.id), col(UserSession.token_hash))
    )
    rows = revoked.all()
    forget(session, *(session_cache_key(token_hash) for _, token_hash in rows))
    return [row_id for row_id, _ in rows]


async def end_session(session: AsyncSession, principal: Principal) -> None:
    """Sign out: the caller's own session ends."""
    if principal.session_id is None:
        raise Unprocessable(
            "signing out ends a browser session: an API key is revoked with DELETE /api-keys/{id}"
        )
    await _revoke_where(session, col(UserSession.id) == principal.session_id)


async def user_sessions(session: AsyncSession, principal: Principal) -> list[UserSession]:
    """The caller's live sessions, newest first (a company key has none)."""
    if principal.user_id is None:
        return []
    query = (
        select(UserSession)
        .where(
            col(UserSession.user_id) == principal.user_id,
            col(UserSession.company_id) == principal.company_id,
            col(UserSession.revoked_at).is_(None),
            col(UserSession.expires_at) > utc_now(),
        )
        .order_by(col(UserSession.created_at).desc())
        .limit(100)
    )
    return list((await session.execute(query)).scalars())


async def revoke_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> None:
    """Ends one of the caller's own sessions (another user's, or another company's: 404)."""
    if principal.user_id is None:
        raise NotFound("session not found")  # a company key has no sessions
    found = await session.execute(
        select(col(UserSession.id)).where(
            col(UserSession.id) == session_id,
            col(UserSession.user_id) == principal.user_id,
            col(UserSession.company_id) == principal.company_id,
        )
    )
    if found.scalar_one_or_none() is None:
        raise NotFound("session not found")
    await _revoke_where(session, col(UserSession.id) == session_id)


async def revoke_user_sessions(
    session: AsyncSession, user_id: uuid.UUID, keep: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Every session of the user ends (but ``keep``): a password changed or reset, the user
    deactivated or demoted."""
    conditions = [col(UserSession.user_id) == user_id]
    if keep is not None:
        conditions.append(col(UserSession.id) != keep)
    return await _revoke_where(session, *conditions)


def _person(principal: Principal) -> uuid.UUID:
    if principal.user_id is None:
        raise Unprocessable("this needs a signed-in person or an API key that belongs to a user")
    return principal.user_id


async def change_password(
    session: AsyncSession, principal: Principal, current: str, new: str
) -> None:
    """The caller's password changes (knowing the current one); its other sessions end."""
    user = await session.get(User, _person(principal))
    assert user is not None and user.company_id == principal.company_id
    check_strength(new, "new_password")
    if not await verify_password(user.password_hash, current):
        raise Unprocessable(
            "current_password: wrong password", details={"field": "current_password"}
        )
    user.password_hash = await hash_password(new)
    await revoke_user_sessions(session, user.id, keep=principal.session_id)
    await session.flush()


@dataclass(frozen=True)
class NewLink:
    row: UserToken
    token: str  # shown once to the admin, inside the link; only its sha256 is kept


async def issue_link(
    session: AsyncSession, user: User, kind: UserTokenKind, issued_by: uuid.UUID | None
) -> NewLink:
    """A one-time link for ``user`` to set a password; earlier unused links of the user end."""
    await session.execute(
        update(UserToken)
        .where(col(UserToken.user_id) == user.id, col(UserToken.used_at).is_(None))
        .values(used_at=utc_now())
    )
    token = secrets.token_urlsafe(32)
    row = UserToken(
        company_id=user.company_id,
        user_id=user.id,
        kind=kind,
        token_hash=hash_key(token),
        created_by_user_id=issued_by,
        expires_at=utc_now() + LINK_LIFETIME[kind],
    )
    session.add(row)
    await session.flush()
    return NewLink(row=row, token=token)


async def redeem_link(session: AsyncSession, token: str, password: str) -> User:
    """Sets the password of the link's user (once: the link is spent) and ends the user's
    sessions; the caller then signs the user in."""
    check_strength(password)
    found = await session.execute(
        select(UserToken, User)
        .join(User, col(User.id) == col(UserToken.user_id))
        .where(col(UserToken.token_hash) == hash_key(token))
        .with_for_update(of=UserToken)
    )
    row = found.one_or_none()
    if row is None or row[0].used_at is not None or row[0].expires_at <= utc_now():
        raise Unauthorized("this link is not valid any more: ask an admin for a new one")
    link, user = row
    if not user.is_active:
        raise Unauthorized("this account is deactivated")
    link.used_at = utc_now()
    user.password_hash = await hash_password(password)
    await revoke_user_sessions(session, user.id)
    await session.flush()
    return user


class SessionAuthenticator:
    """Resolves a session cookie to a ``Principal`` through the shared cache (no query nor
    session when warm, like ``Authenticator``); ``forget`` (a revocation's commit) reaches every
    process's cache at once."""

    def __init__(self, cache: Cache, sessions: SessionFactory, ttl: int) -> None:
        self._cache = cache
        self._sessions = sessions
        self._ttl = ttl

    async def _load(self, token_hash: str) -> dict[str, str]:
        async with transaction(self._sessions) as session:
            found = await session.execute(
                select(UserSession, col(User.role))
                .join(User, col(User.id) == col(UserSession.user_id))
                .where(
                    col(UserSession.token_hash) == token_hash,
                    col(UserSession.revoked_at).is_(None),
                    col(UserSession.expires_at) > utc_now(),
                    col(User.is_active).is_(True),
                )
            )
            row = found.one_or_none()
            if row is None:
                raise Unauthorized("your session has ended: sign in again", code="signed_out")
            user_session, role = row
            await _touch(session, user_session)
        return {
            "company_id": str(user_session.company_id),
            "session_id": str(user_session.id),
            "user_id": str(user_session.user_id),
            "role": role.value,
            "expires_at": user_session.expires_at.isoformat(),
        }

    async def principal(self, token_hash: str) -> Principal:
        cached = await self._cache.get(
            session_cache_key(token_hash), self._ttl, lambda: self._load(token_hash)
        )
        if datetime.fromisoformat(cached["expires_at"]) <= utc_now():
            raise Unauthorized("your session has ended: sign in again", code="signed_out")
        return Principal(
            company_id=uuid.UUID(cached["company_id"]),
            api_key_id=None,
            role=UserRole(cached["role"]),
            key_hash=token_hash,
            user_id=uuid.UUID(cached["user_id"]),
            session_id=uuid.UUID(cached["session_id"]),
        )


async def _touch(session: AsyncSession, row: UserSession) -> None:
    now = utc_now()
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        await session.execute(
            update(UserSession).where(col(UserSession.id) == row.id).values(last_seen_at=now)
        )
