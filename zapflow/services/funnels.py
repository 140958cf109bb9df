"""Funnels and their stages: positions kept 0..n-1 through inserts, reorders and deletions.

``stages (funnel_id, position)`` is unique and DEFERRABLE INITIALLY DEFERRED, so a shift or a
reorder may hold duplicate positions mid-transaction; it only has to be a permutation at commit.
Every stage write first locks the funnel row, so two concurrent writers of one funnel's stages
run one after the other instead of both computing the same positions and failing at commit.

Reads of a funnel's stage list go through the cache (``stages_cache_key``); every write here of
the stages or the funnel invalidates it after its commit (``cache.forget``), and a stage deleted
with its deals moved stages their ``deal.moved`` events. The board reads the stages in its own
single statement with the deals (``BOARD``), so it never shows a stale list.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, Uuid, bindparam, delete, exists, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.cache import Cache, forget
from zapflow.db import DriverReads
from zapflow.errors import Conflict, NotFound, Unprocessable
from zapflow.models import Contact, Deal, DealStatus, Funnel, Stage
from zapflow.schemas.deals import DealPublic
from zapflow.schemas.funnels import MAX_STAGES
from zapflow.services import deals
from zapflow.services.events import stage as stage_events
from zapflow.services.queries import get_scoped

STAGES_CACHE_SECONDS = 600


@dataclass(frozen=True)
class NewStage:
    name: str
    color: str | None = None


# --- funnels --------------------------------------------------------------------------------------


async def stages_of(
    session: AsyncSession, company_id: uuid.UUID, funnel_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Stage]]:
    """The stages of each funnel by position, in one query."""
    by_funnel: dict[uuid.UUID, list[Stage]] = {funnel_id: [] for funnel_id in funnel_ids}
    if not funnel_ids:
        return by_funnel
    query = (
        select(Stage)
        .where(col(Stage.company_id) == company_id, col(Stage.funnel_id).in_(funnel_ids))
        .order_by(col(Stage.funnel_id), col(Stage.position))
    )
    for stage in (await session.execute(query)).scalars():
        by_funnel[stage.funnel_id].append(stage)
    return by_funnel


def stages_cache_key(funnel_id: uuid.UUID) -> str:
    return f"funnel:{funnel_id}:stages"


async def cached_stages(cache: Cache, session: AsyncSession, funnel: Funnel) -> list[Stage]:
    """The funnel's stages by position, read through the cache, as detached rows (never added
    to a session). The funnel row, read first from Postgres, has already checked the tenancy."""

    async def load() -> list[dict[str, Any]]:
        stages = (await stages_of(session, funnel.company_id, [funnel.id]))[funnel.id]
        return [stage.model_dump(mode="json") for stage in stages]

    rows = await cache.get(stages_cache_key(funnel.id), STAGES_CACHE_SECONDS, load)
    return [Stage.model_validate(row) for row in rows]


async def list_funnels(
    session: AsyncSession, company_id: uuid.UUID
) -> list[tuple[Funnel, list[Stage]]]:
    """The company's funnels, oldest first, each with its stages: two queries in all."""
    query = (
        select(Funnel)
        .where(col(Funnel.company_id) == company_id)
        .order_by(col(Funnel.created_at), col(Funnel.id))
    )
    funnels = list((await session.execute(query)).scalars())
    stages = await stages_of(session, company_id, [f.id for f in funnels])
    return [(funnel, stages[funnel.id]) for funnel in funnels]


async def get_funnel(session: AsyncSession, company_id: uuid.UUID, funnel_id: uuid.UUID) -> Funnel:
    return await get_scoped(session, Funnel, company_id, funnel_id)


async def lock_funnel(
    session: AsyncSession, company_id: uuid.UUID, funnel_id: uuid.UUID, *, exclusive: bool = False
) -> Funnel:
    """The funnel, row-locked: FOR NO KEY UPDATE serializes the writers of its stages without
    holding up deals being created in it; ``exclusive`` (FOR UPDATE, to delete it) waits for
    those too, so no deal slips in between counting the open ones and the delete."""
    lock: bool | dict[str, bool] = True if exclusive else {"key_share": True}
    funnel = await session.get(Funnel, funnel_id, with_for_update=lock)
    if funnel is None or funnel.company_id != company_id:
        raise NotFound("funnel not found")
    return funnel


async def create_funnel(
    session: AsyncSession,
    company_id: uuid.UUID,
    name: str,
    description: str | None,
    stages: Sequence[NewStage],
) -> tuple[Funnel, list[Stage]]:
    funnel = Funnel(company_id=company_id, name=name, description=description)
    session.add(funnel)
    await session.flush()
    rows = [_stage_row(funnel, new, position) for position, new in enumerate(stages)]
    session.add_all(rows)
    await session.flush()
    return funnel, rows


async def delete_funnel(session: AsyncSession, funnel: Funnel, *, force: bool) -> None:
    """Deletes the funnel with its stages and deals; refused while deals are open unless forced."""
    if not force:
        open_deals = await session.scalar(
            select(func.count()).where(
                col(Deal.company_id) == funnel.company_id,
                col(Deal.funnel_id) == funnel.id,
                col(Deal.status) == DealStatus.OPEN,
            )
        )
        if open_deals:
            raise Conflict(
                f"the funnel has {open_deals} open deal(s): close or move them, "
                "or delete with ?force=true",
                code="funnel_has_open_deals",
                details={"open_deals": open_deals},
            )
    await session.execute(delete(Funnel).where(col(Funnel.id) == funnel.id))
    _forget_stages(session, funnel)


async def update_funnel(session: AsyncSession, funnel: Funnel, changes: dict[str, Any]) -> None:
    """Set the given fields (name, description)."""
    for name, value in changes.items():
        setattr(funnel, name, value)
    await session.flush()
    _forget_stages(session, funnel)


def _forget_stages(session: AsyncSession, funnel: Funnel) -> None:
    forget(session, stages_cache_key(funnel.id))


# --- stages ---------------------------------------------------------------------------------------


def _stage_row(funnel: Funnel, new: NewStage, position: int) -> Stage:
    stage = Stage(
        company_id=funnel.company_id, funnel_id=funnel.id, name=new.name, position=position
    )
    if new.color is not None:
        stage.color = new.color
    return stage


async def get_stage(
    session: AsyncSession, funnel: Funnel, stage_id: uuid.UUID, *, for_delete: bool = False
) -> Stage:
    """A stage of the funnel; ``for_delete`` locks it FOR UPDATE, so a deal being moved into it
    meanwhile either lands before its deals are moved out, or finds it gone."""
    stage = await session.get(Stage, stage_id, with_for_update=True if for_delete else None)
    if stage is None or stage.funnel_id != funnel.id or stage.company_id != funnel.company_id:
        raise NotFound("stage not found")
    return stage


async def _stage_count(session: AsyncSession, funnel: Funnel) -> int:
    count = await session.scalar(select(func.count()).where(col(Stage.funnel_id) == funnel.id))
    return int(count or 0)


async def add_stage(
    session: AsyncSession, funnel: Funnel, new: NewStage, position: int | None
) -> Stage:
    """Insert at ``position`` (shifting the stages from there on), or append; a position past
    the end appends, like ``list.insert``. The funnel must be locked (``lock_funnel``)."""
    count = await _stage_count(session, funnel)
    if count >= MAX_STAGES:
        raise Unprocessable(f"a funnel has at most {MAX_STAGES} stages", code="too_many_stages")
    position = count if position is None else min(position, count)
    if position < count:
        await session.execute(
            update(Stage)
            .where(col(Stage.funnel_id) == funnel.id, col(Stage.position) >= position)
            .values(position=col(Stage.position) + 1)
        )
    stage = _stage_row(funnel, new, position)
    session.add(stage)
    await session.flush()
    _forget_stages(session, funnel)
    return stage


async def update_stage(
    session: AsyncSession, funnel: Funnel, stage: Stage, changes: dict[str, Any]
) -> None:
    """Set the given fields (name, color) of a stage of ``funnel``."""
    for name, value in changes.items():
        setattr(stage, name, value)
    await session.flush()
    _forget_stages(session, funnel)


async def reorder_stages(
    session: AsyncSession, funnel: Funnel, stage_ids: Sequence[uuid.UUID]
) -> list[Stage]:
    """Give the stages the order of ``stage_ids``, which must list each of them exactly once.
    The funnel must be locked (``lock_funnel``)."""
    stages = (await stages_of(session, funnel.company_id, [funnel.id]))[funnel.id]
    by_id = {stage.id: stage for stage in stages}
    listed = set(stage_ids)
    if len(stage_ids) != len(listed) or listed != set(by_id):
        message = "must list each of the funnel's stages exactly once"
        mismatch = {
            "missing": [str(i) for i in by_id if i not in listed],
            "unknown": [str(i) for i in listed if i not in by_id],
        }
        raise Unprocessable(
            f"body.stage_ids: {message}",
            details=[{"field": "body.stage_ids", "message": message, **mismatch}],
        )
    ordered = [by_id[stage_id] for stage_id in stage_ids]
    for position, stage in enumerate(ordered):
        stage.position = position
    await session.flush()
    _forget_stages(session, funnel)
    return ordered


async def delete_stage(
    session: AsyncSession,
    funnel: Funnel,
    stage: Stage,
    move_to: uuid.UUID | None,
    user_id: uuid.UUID | None,
) -> None:
    """Delete a stage; its deals (any status) go to ``move_to`` with their moves recorded, and
    without ``move_to`` a stage holding deals is refused; each deal moved gets its
    ``deal.moved`` event. The funnel must be locked (``lock_funnel``)."""
    moved: list[uuid.UUID] = []
    if move_to is not None:
        if move_to == stage.id:
            raise deals.invalid_reference("query.move_to", "cannot move deals to the stage deleted")
        target = await deals.stage_of_funnel(
            session, funnel.company_id, funnel.id, move_to, "query.move_to"
        )
        moved = await deals.move_stage_deals(session, stage, target, user_id)
    elif await session.scalar(select(exists().where(col(Deal.stage_id) == stage.id))):
        raise Conflict(
            "the stage holds deals: move them first, or delete with ?move_to=<stage id>",
            code="stage_has_deals",
        )
    position = stage.position
    await session.delete(stage)
    await session.flush()
    await session.execute(
        update(Stage)
        .where(col(Stage.funnel_id) == funnel.id, col(Stage.position) > position)
        .values(position=col(Stage.position) - 1)
    )
    _forget_stages(session, funnel)
    if moved:
        public = await deals.list_public(session, funnel.company_id, moved)
        await stage_events(
            session, [deals.deal_event("deal.moved", funnel.company_id, d) for d in public]
        )


# --- board ----------------------------------------------------------------------------------------


_STAGE_FIELDS = ("id", "funnel_id", "name", "color", "position", "created_at")
_DEAL_FIELDS = tuple(name for name in DealPublic.model_fields if name not in ("contact", "stage"))
# (field, its column's label in the board's rows), formatted once, not per row
_STAGE_LABELS = tuple((name, f"stage_{name}") for name in _STAGE_FIELDS)
_DEAL_LABELS = tuple((name, f"deal_{name}") for name in _DEAL_FIELDS)


def _board_query() -> Select[*tuple[Any, ...]]:
    """The whole board in one statement: the funnel, its stages in order (read with it, so
    never stale), each stage's open totals (one GROUP BY over the funnel's open deals) and its
    newest open deals (a LATERAL per stage, reading only the first ``per_stage`` rows of
    ``idx_deals_board``) with their contacts. One row per deal, or per stage without deals, or
    one for a funnel without stages; none for no funnel. Values: ``company_id``,
    ``funnel_id``, ``per_stage``."""
    company_id = bindparam("company_id", type_=Uuid())
    funnel_id = bindparam("funnel_id", type_=Uuid())
    open_deal = (
        col(Deal.company_id) == company_id,
        col(Deal.funnel_id) == funnel_id,
        col(Deal.status) == DealStatus.OPEN.value,
    )
    by_currency = (
        select(col(Deal.stage_id), col(Deal.currency), func.count().label("n"),
               func.sum(col(Deal.value)).label("total"))
        .where(*open_deal)
        .group_by(col(Deal.stage_id), col(Deal.currency))
        .cte("by_currency")
    )  # fmt: skip
    totals = (
        select(by_currency.c.stage_id, func.sum(by_currency.c.n).label("deal_count"),
               func.array_agg(by_currency.c.currency).label("currencies"),
               func.array_agg(by_currency.c.total).label("sums"))
        .group_by(by_currency.c.stage_id)
        .cte("totals")
    )  # fmt: skip
    newest = (
        select(*(col(getattr(Deal, name)) for name in _DEAL_FIELDS))
        .where(*open_deal, col(Deal.stage_id) == col(Stage.id))
        .order_by(col(Deal.created_at).desc(), col(Deal.id).desc())
        .limit(bindparam("per_stage", type_=Integer))
        .lateral("newest")
    )
    return (
        select(
            col(Funnel.name), col(Funnel.description),
            *(col(getattr(Stage, name)).label(f"stage_{name}") for name in _STAGE_FIELDS),
            totals.c.deal_count, totals.c.currencies, totals.c.sums,
            *(newest.c[name].label(f"deal_{name}") for name in _DEAL_FIELDS),
            col(Contact.name).label("contact_name"),
            col(Contact.phone_number).label("contact_phone_number"),
        )
        .select_from(Funnel)
        .outerjoin(Stage, (col(Stage.funnel_id) == col(Funnel.id))
                   & (col(Stage.company_id) == company_id))
        .outerjoin(totals, totals.c.stage_id == col(Stage.id))
        .outerjoin(newest, true())
        .outerjoin(Contact, col(Contact.id) == newest.c.contact_id)
        .where(col(Funnel.id) == funnel_id, col(Funnel.company_id) == company_id)
        .order_by(col(Stage.position), newest.c.created_at.desc(), newest.c.id.desc())
    )  # fmt: skip


BOARD = _board_query()


def _board_stage(row: Any) -> dict[str, Any]:
    """A ``BoardStage`` (its deals still to come), from a board row."""
    stage = {name: row[label] for name, label in _STAGE_LABELS}
    count = int(row["deal_count"] or 0)
    sums = zip(row["currencies"] or (), row["sums"] or (), strict=True)
    return {**stage, "deal_count": count, "value_totals": dict(sums), "has_more": False,
            "deals": []}  # fmt: skip


def _board_deal(row: Any, stage: dict[str, Any]) -> dict[str, Any]:
    """A ``DealPublic`` from a board row, in the model's field order."""
    deal = {name: row[label] for name, label in _DEAL_LABELS}
    deal["contact"] = {"id": deal["contact_id"], "name": row["contact_name"],
                       "phone_number": row["contact_phone_number"]}  # fmt: skip
    deal["stage"] = {"id": stage["id"], "name": stage["name"], "color": stage["color"]}
    return deal


async def board(
    reads: DriverReads, company_id: uuid.UUID, funnel_id: uuid.UUID, per_stage: int
) -> dict[str, Any]:
    """The kanban board as a ``BoardPublic`` dict: the stages in order with their newest open
    deals (at most ``per_stage`` each) and their totals, in one statement on the driver pool
    and no model per row (the board is among the API's busiest reads)."""
    rows = await reads.fetch_fixed(
        BOARD, company_id=company_id, funnel_id=funnel_id, per_stage=per_stage
    )
    if not rows:
        raise NotFound("funnel not found")
    stages: list[dict[str, Any]] = []
    for row in rows:
        if row["stage_id"] is None:
            break  # a funnel without stages: its one row
        if not stages or stages[-1]["id"] != row["stage_id"]:
            stages.append(_board_stage(row))
        if row["deal_id"] is not None:
            stages[-1]["deals"].append(_board_deal(row, stages[-1]))
    for stage in stages:
        stage["has_more"] = stage["deal_count"] > len(stage["deals"])
    name, description = rows[0]["name"], rows[0]["description"]
    return {"id": funnel_id, "name": name, "description": description, "stages": stages}
