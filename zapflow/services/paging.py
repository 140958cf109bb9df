"""Pagination: opaque keyset cursors (stable under inserts) and offset pages with totals."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from zapflow.errors import Unprocessable

T = TypeVar("T")
CursorValue = datetime | uuid.UUID | str | int
INVALID_CURSOR = "cursor: not a cursor this API returned (or from another list)"


def encode_cursor(*values: CursorValue) -> str:
    raw = orjson.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: Sequence[type[CursorValue]]) -> tuple[Any, ...]:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError
        return tuple(_parse(kind, value) for kind, value in zip(types, raw, strict=True))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise Unprocessable(INVALID_CURSOR, code="invalid_cursor") from None


def _parse(kind: type[CursorValue], value: str) -> CursorValue:
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is uuid.UUID:
        return uuid.UUID(value)
    return int(value) if kind is int else str(value)


def keyset(
    query: Select[Any],
    columns: Sequence[Mapped[Any] | ColumnElement[Any]],
    types: Sequence[type[CursorValue]],
    limit: int,
    cursor: str | None,
) -> Select[Any]:
    """Newest first by ``columns`` (the last one unique), after the row the cursor names."""
    query = query.order_by(*(c.desc() for c in columns)).limit(limit + 1)
    if cursor:
        query = query.where(tuple_(*columns) < tuple_(*decode_cursor(cursor, types)))
    return query


def cut_page(
    rows: Sequence[T], limit: int, key: Callable[[T], Sequence[CursorValue]]
) -> tuple[list[T], str | None]:
    """The page and the cursor of the next one (None on the last page)."""
    page = list(rows[:limit])
    if len(rows) <= limit:
        return page, None
    return page, encode_cursor(*key(page[-1]))


async def count_rows(
    session: AsyncSession, query: Select[Any], *, at_most: int | None = None
) -> int:
    """How many rows ``query`` returns; with ``at_most``, counting stops after ``at_most + 1``."""
    query = query.order_by(None)
    if at_most is not None:
        query = query.limit(at_most + 1)
    counted = select(func.count()).select_from(query.subquery())
    return int((await session.execute(counted)).scalar_one())


async def newest_first(
    session: AsyncSession, query: Any, at: Any, row_id: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """A keyset page by (``at``, ``row_id``), newest first."""
    paged = keyset(query, [col(at), col(row_id)], (datetime, uuid.UUID), limit, cursor)
    rows = list((await session.execute(paged)).scalars())
    return cut_page(rows, limit, lambda r: (getattr(r, at.key), r.id))
