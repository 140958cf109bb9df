"""Deals: creation with tenant-checked references, moves recorded as stage history, won/lost/reopen,
and the reads that return deals with their contact and stage in the same query. Each write
stages its own ``deal.*`` event (published after commit); one that changes nothing stages none."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import Label
from sqlmodel import SQLModel, col

from zapflow.errors import NotFound, Unprocessable
from zapflow.models import Contact, Deal, DealStageChange, DealStatus, Funnel, Stage, User, utc_now
from zapflow.schemas.contacts import ContactRef
from zapflow.schemas.deals import DealPublic, DealStageRef
from zapflow.services.events import Event
from zapflow.services.events import stage as stage_events
from zapflow.services.paging import cut_page, keyset
from zapflow.services.queries import get_scoped

Row = TypeVar("Row", bound=SQLModel)

# What a deal row needs besides the deal: its contact's and its stage's display fields.
_REFS: tuple[Label[Any], ...] = (
    col(Contact.name).label("contact_name"),
    col(Contact.phone_number).label("contact_phone_number"),
    col(Stage.name).label("stage_name"),
    col(Stage.color).label("stage_color"),
)


def invalid_reference(field_name: str, message: str) -> Unprocessable:
    """A 422 naming the body or query field that points at nothing of the caller's company."""
    return Unprocessable(
        f"{field_name}: {message}",
        details=[{"field": field_name, "message": message, "type": "invalid_reference"}],
    )


async def scoped_reference(
    session: AsyncSession,
    model: type[Row],
    company_id: uuid.UUID,
    object_id: uuid.UUID,
    field_name: str,
) -> Row:
    """The row an id in the request names, else a 422 naming the field (other tenants' too).

    Read FOR KEY SHARE: it cannot be deleted before the link this transaction makes to it is
    committed; a delete already under way makes this wait, then find nothing (a clean 422
    instead of a foreign-key error at commit)."""
    row = await session.get(model, object_id, with_for_update={"read": True, "key_share": True})
    if row is None or row.company_id != company_id:  # type: ignore[attr-defined]
        raise invalid_reference(field_name, f"no such {model.__name__.lower()}")
    return row


# --- reads ----------------------------------------------------------------------------------------


def _with_refs(query: Select[Any]) -> Select[Any]:
    return (
        query.add_columns(*_REFS)
        .join(Contact, col(Contact.id) == col(Deal.contact_id))
        .join(Stage, col(Stage.id) == col(Deal.stage_id))
    )


def to_public(
    deal: Deal,
    contact_name: str,
    contact_phone_number: str | None,
    stage_name: str,
    stage_color: str,
) -> DealPublic:
    return DealPublic(
        **deal.model_dump(exclude={"company_id"}),
        contact=ContactRef(
            id=deal.contact_id, name=contact_name, phone_number=contact_phone_number
        ),
        stage=DealStageRef(id=deal.stage_id, name=stage_name, color=stage_color),
    )


def _public(row: Any) -> DealPublic:
    """A ``_with_refs`` row as the public shape."""
    return to_public(
        row[0], row.contact_name, row.contact_phone_number, row.stage_name, row.stage_color
    )


async def get_deal(session: AsyncSession, company_id: uuid.UUID, deal_id: uuid.UUID) -> Deal:
    return await get_scoped(session, Deal, company_id, deal_id)


async def get_public(
    session: AsyncSession, company_id: uuid.UUID, deal_id: uuid.UUID
) -> DealPublic:
    query = _with_refs(select(Deal)).where(
        col(Deal.id) == deal_id, col(Deal.company_id) == company_id
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound("deal not found")
    return _public(row)


async def list_public(
    session: AsyncSession, company_id: uuid.UUID, deal_ids: Sequence[uuid.UUID]
) -> list[DealPublic]:
    query = _with_refs(select(Deal)).where(
        col(Deal.company_id) == company_id, col(Deal.id).in_(deal_ids)
    )
    return [_public(row) for row in await session.execute(query)]


@dataclass(frozen=True)
class DealFilters:
    funnel_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    status: DealStatus | None = None
    owner_user_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None


async def page_deals(
    session: AsyncSession,
    company_id: uuid.UUID,
    filters: DealFilters,
    limit: int,
    cursor: str | None,
) -> tuple[list[DealPublic], str | None]:
    """Newest first, one query; the cursor is the last row's (created_at, id)."""
    query = _with_refs(select(Deal)).where(col(Deal.company_id) == company_id)
    for name, value in asdict(filters).items():
        if value is not None:
            query = query.where(getattr(Deal, name) == value)
    query = keyset(
        query, [col(Deal.created_at), col(Deal.id)], (datetime, uuid.UUID), limit, cursor
    )
    rows = list(await session.execute(query))
    page, next_cursor = cut_page(rows, limit, lambda r: (r[0].created_at, r[0].id))
    return [_public(r) for r in page], next_cursor


async def history(
    session: AsyncSession, deal: Deal, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """The deal's stage changes, newest first, with both stages' names and colors (one query)."""
    from_stage, to_stage = aliased(Stage), aliased(Stage)
    query = (
        select(DealStageChange)
        .add_columns(from_stage, to_stage)
        .outerjoin(from_stage, col(from_stage.id) == col(DealStageChange.from_stage_id))
        .join(to_stage, col(to_stage.id) == col(DealStageChange.to_stage_id))
        .where(
            col(DealStageChange.deal_id) == deal.id,
            col(DealStageChange.company_id) == deal.company_id,
        )
    )
    query = keyset(
        query,
        [col(DealStageChange.created_at), col(DealStageChange.id)],
        (datetime, uuid.UUID),
        limit,
        cursor,
    )
    rows = list(await session.execute(query))
    return cut_page(rows, limit, lambda r: (r[0].created_at, r[0].id))


# --- writes ---------------------------------------------------------------------------------------


async def lock_deal(session: AsyncSession, company_id: uuid.UUID, deal_id: uuid.UUID) -> Deal:
    """The deal, row-locked for the transaction: concurrent moves record a true ``from``."""
    deal = await session.get(Deal, deal_id, with_for_update=True)
    if deal is None or deal.company_id != company_id:
        raise NotFound("deal not found")
    return deal


async def stage_of_funnel(
    session: AsyncSession,
    company_id: uuid.UUID,
    funnel_id: uuid.UUID,
    stage_id: uuid.UUID,
    field_name: str,
) -> Stage:
    stage = await scoped_reference(session, Stage, company_id, stage_id, field_name)
    if stage.funnel_id != funnel_id:
        raise invalid_reference(field_name, "not a stage of the deal's funnel")
    return stage


async def first_stage(session: AsyncSession, funnel: Funnel) -> Stage:
    query = (
        select(Stage)
        .where(col(Stage.company_id) == funnel.company_id, col(Stage.funnel_id) == funnel.id)
        .order_by(col(Stage.position))
        .limit(1)
    )
    stage = (await session.execute(query)).scalar_one_or_none()
    if stage is None:
        raise invalid_reference("body.funnel_id", "the funnel has no stages yet")
    return stage


async def check_references(
    session: AsyncSession, company_id: uuid.UUID, fields: dict[str, Any]
) -> None:
    """Every contact or owner id the request names must be one of the caller's company."""
    if fields.get("contact_id") is not None:
        await scoped_reference(
            session, Contact, company_id, fields["contact_id"], "body.contact_id"
        )
    if fields.get("owner_user_id") is not None:
        await scoped_reference(
            session, User, company_id, fields["owner_user_id"], "body.owner_user_id"
        )


async def create_deal(
    session: AsyncSession,
    company_id: uuid.UUID,
    fields: dict[str, Any],
    user_id: uuid.UUID | None,
) -> DealPublic:
    funnel = await scoped_reference(
        session, Funnel, company_id, fields["funnel_id"], "body.funnel_id"
    )
    if fields.get("stage_id") is None:
        stage = await first_stage(session, funnel)
    else:
        stage = await stage_of_funnel(
            session, company_id, funnel.id, fields["stage_id"], "body.stage_id"
        )
    await check_references(session, company_id, fields)
    deal = Deal(company_id=company_id, **{**fields, "stage_id": stage.id})
    session.add(deal)
    await session.flush()
    _record_change(session, deal, None, user_id)
    await session.flush()
    return await _announce(session, "deal.created", deal)


async def update_deal(session: AsyncSession, deal: Deal, fields: dict[str, Any]) -> DealPublic:
    await check_references(session, deal.company_id, fields)
    for name, value in fields.items():
        setattr(deal, name, value)
    await session.flush()
    return await _announce(session, "deal.updated", deal)


async def delete_deal(session: AsyncSession, company_id: uuid.UUID, deal_id: uuid.UUID) -> None:
    deal = await lock_deal(session, company_id, deal_id)
    public = await get_public(session, company_id, deal_id)
    await session.delete(deal)
    await session.flush()
    await stage_events(session, [deal_event("deal.deleted", company_id, public)])


async def _announce(session: AsyncSession, event_type: str, deal: Deal) -> DealPublic:
    """The deal as the API returns it, its ``event_type`` event staged."""
    public = await get_public(session, deal.company_id, deal.id)
    await stage_events(session, [deal_event(event_type, deal.company_id, public)])
    return public


def _record_change(
    session: AsyncSession, deal: Deal, from_stage_id: uuid.UUID | None, user_id: uuid.UUID | None
) -> None:
    session.add(
        DealStageChange(
            company_id=deal.company_id,
            deal_id=deal.id,
            from_stage_id=from_stage_id,
            to_stage_id=deal.stage_id,
            changed_by_user_id=user_id,
        )
    )


async def move_deal(
    session: AsyncSession, deal: Deal, stage_id: uuid.UUID, user_id: uuid.UUID | None
) -> DealPublic:
    """Move to another stage of the same funnel, recording the change and announcing it as
    ``deal.moved``; nothing when it is there already."""
    target = await stage_of_funnel(
        session, deal.company_id, deal.funnel_id, stage_id, "body.stage_id"
    )
    if target.id == deal.stage_id:
        return await get_public(session, deal.company_id, deal.id)
    previous = deal.stage_id
    deal.stage_id = target.id
    _record_change(session, deal, previous, user_id)
    await session.flush()
    return await _announce(session, "deal.moved", deal)


async def move_stage_deals(
    session: AsyncSession, source: Stage, target: Stage, user_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """Move every deal of ``source`` (any status) to ``target``, recording each change."""
    moved = list(
        (
            await session.execute(
                update(Deal)
                .where(
                    col(Deal.company_id) == source.company_id,
                    col(Deal.stage_id) == source.id,
                )
                .values(stage_id=target.id)
                .returning(col(Deal.id)),
                execution_options={"synchronize_session": False},
            )
        ).scalars()
    )
    session.add_all(
        DealStageChange(
            company_id=source.company_id,
            deal_id=deal_id,
            from_stage_id=source.id,
            to_stage_id=target.id,
            changed_by_user_id=user_id,
        )
        for deal_id in moved
    )
    await session.flush()
    return moved


async def set_status(session: AsyncSession, deal: Deal, status: DealStatus) -> DealPublic:
    """Won, lost or reopened (``deal.updated``); ``closed_at`` set when it closes, cleared on
    reopen. Nothing changes if the deal already had that status (its ``closed_at`` is kept)."""
    if deal.status == status:
        return await get_public(session, deal.company_id, deal.id)
    deal.status = status
    deal.closed_at = None if status == DealStatus.OPEN else utc_now()
    await session.flush()
    return await _announce(session, "deal.updated", deal)


def deal_event(event_type: str, company_id: uuid.UUID, deal: DealPublic) -> Event:
    return Event(event_type, company_id, deal.model_dump(mode="json"))
