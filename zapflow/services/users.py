"""A company's users (admins and agents): one e-mail per company; no admin locks itself out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Conflict
from zapflow.models import ApiKey, User, UserRole
from zapflow.services.auth import Principal
from zapflow.services.paging import cut_page, keyset
from zapflow.services.queries import get_scoped
from zapflow.services.user_sessions import revoke_user_sessions


async def create_user(session: AsyncSession, company_id: uuid.UUID, fields: dict[str, Any]) -> User:
    user = User(company_id=company_id, **{**fields, "email": fields["email"].lower()})
    session.add(user)
    await _flush_unique_email(session)
    return user


async def _flush_unique_email(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            "email: another user of this company has this e-mail", details={"field": "email"}
        ) from None


async def get_user(session: AsyncSession, company_id: uuid.UUID, user_id: uuid.UUID) -> User:
    return await get_scoped(session, User, company_id, user_id)


async def page_users(
    session: AsyncSession,
    company_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    *,
    role: UserRole | None = None,
    is_active: bool | None = None,
) -> tuple[list[User], str | None]:
    """Newest first."""
    query = select(User).where(col(User.company_id) == company_id)
    if role is not None:
        query = query.where(col(User.role) == role)
    if is_active is not None:
        query = query.where(col(User.is_active) == is_active)
    query = keyset(
        query, [col(User.created_at), col(User.id)], (datetime, uuid.UUID), limit, cursor
    )
    rows = list((await session.execute(query)).scalars())
    return cut_page(rows, limit, lambda u: (u.created_at, u.id))


async def update_user(
    session: AsyncSession, user: User, changes: dict[str, Any], principal: Principal
) -> None:
    demoted = changes.get("role") == UserRole.AGENT or changes.get("is_active") is False
    if demoted and user.id == principal.user_id:
        raise Conflict("you cannot deactivate or demote yourself: ask another admin")
    if "email" in changes:
        changes["email"] = changes["email"].lower()
    if {"role", "is_active"} & changes.keys():
        await revoke_user_sessions(session, user.id)  # signed in again, with the new role
    for name, value in changes.items():
        setattr(user, name, value)
    await _flush_unique_email(session)


async def delete_user(session: AsyncSession, user: User, principal: Principal) -> None:
    """Deletes the user and (by the foreign key's cascade) its API keys."""
    if user.id == principal.user_id:
        raise Conflict("you cannot delete yourself: ask another admin")
    await revoke_user_sessions(session, user.id)  # no process keeps honouring a cached one
    await session.delete(user)
    await session.flush()


async def key_hashes(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """The user's API keys, for the authenticator to forget when the user changes."""
    query = select(col(ApiKey.key_hash)).where(col(ApiKey.user_id) == user_id)
    return list((await session.execute(query)).scalars())
