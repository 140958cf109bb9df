"""Page shapes, the page-size limit and sparse fieldsets (``?fields=id,name``) for the routes.

No ``from __future__ import annotations`` here: FastAPI must see the real annotations of the
field dependency, whose Query description is built at run time.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Generic, Self, TypeVar
from uuid import UUID

import orjson
from fastapi import Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from zapflow.errors import Unprocessable

T = TypeVar("T")
MAX_PAGE = 100

MAX_PAGE_NUMBER = 1_000_000  # times MAX_PAGE, the offset stays far inside a bigint

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}")]
PageNumber = Annotated[
    int, Query(ge=1, le=MAX_PAGE_NUMBER, description="Page number, from 1 (offset pages)")
]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


class CursorPage(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None
    has_more: bool

    @classmethod
    def of(cls, rows: Iterable[Any], next_cursor: str | None) -> Self:
        """A page of ``rows`` (ORM rows or models), validated into the item type."""
        body = {"data": list(rows), "next_cursor": next_cursor, "has_more": next_cursor is not None}
        return cls.model_validate(body, from_attributes=True)


class OffsetPage(BaseModel, Generic[T]):
    data: list[T]
    total: int
    page: int
    pages: int
    limit: int
    total_exact: bool = Field(
        True,
        description="false: counting stopped early; `total` (and `pages`) are lower bounds: "
        "at least that many match",
    )


def fields_param(
    model: type[BaseModel],
) -> Callable[[str | None], Awaitable[frozenset[str] | None]]:
    """A query dependency: the requested fields, checked against ``model``'s (422 otherwise)."""
    allowed = frozenset(model.model_fields)
    description = f"Comma-separated fields to return, among: {', '.join(sorted(allowed))}"

    async def dependency(
        fields: Annotated[str | None, Query(description=description)] = None,
    ) -> frozenset[str] | None:
        if not fields:
            return None
        wanted = frozenset(f.strip() for f in fields.split(",") if f.strip())
        unknown = sorted(wanted - allowed)
        if unknown:
            raise Unprocessable(
                f"fields: unknown field {', '.join(unknown)}",
                details={"unknown": unknown, "allowed": sorted(allowed)},
            )
        return wanted | {"id"} if "id" in allowed else wanted

    return dependency


def sparse(items: Iterable[BaseModel], fields: frozenset[str] | None) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json", include=set(fields) if fields else None) for item in items]


def respond(page: BaseModel, fields: frozenset[str] | None) -> Response:
    """The page (or object) as JSON, whole or holding only the requested fields.

    Serialized here, once, by pydantic: returning the model would make FastAPI validate every
    row again against the response model before serializing it.
    """
    if fields is None:
        return Response(page.model_dump_json(), media_type="application/json")
    if isinstance(page, CursorPage | OffsetPage):
        body = page.model_dump(mode="json", exclude={"data"})
        body["data"] = sparse(page.data, fields)
        return JSONResponse(body)
    return JSONResponse(page.model_dump(mode="json", include=set(fields)))


def _json_default(value: object) -> str:
    # asyncpg's UUID (orjson takes only uuid.UUID itself); decimals as pydantic writes them
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(body: object) -> Response:
    """``body`` serialized once by orjson, in pydantic's JSON forms (UTC as ``Z``, decimals as
    strings), for rows already in a public shape."""
    raw = orjson.dumps(body, default=_json_default, option=orjson.OPT_UTC_Z)
    return Response(raw, media_type="application/json")


def only(rows: Iterable[Mapping[str, Any]], fields: frozenset[str] | None) -> list[Any]:
    """The rows, or only their requested fields."""
    if fields is None:
        return list(rows)
    return [{name: value for name, value in row.items() if name in fields} for row in rows]


def respond_cursor_page(
    rows: Iterable[Mapping[str, Any]], next_cursor: str | None, fields: frozenset[str] | None
) -> Response:
    """A ``CursorPage`` of rows that already have the item model's shape (dicts of column
    values, as the services' lean list queries return them), with no per-row validation."""
    body = {"data": only(rows, fields), "next_cursor": next_cursor}
    return json_response({**body, "has_more": next_cursor is not None})
