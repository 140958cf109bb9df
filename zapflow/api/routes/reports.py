"""Reports for supervisors and admins: conversations closed and how fast, SLA targets met (by
day, team or agent), messages per day, the busiest hours, CSAT; JSON, or CSV with
``?format=csv``.

Agents are refused (``reports:read``): the figures compare people, and an agent's own are in
its inbox. Days are the company's (its time zone), both ends included, at most a year."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.errors import NotFound, Unprocessable
from zapflow.models import Team
from zapflow.schemas.reports import (
    ConversationFigures,
    ConversationsReport,
    CsatReport,
    GroupBy,
    HeatmapReport,
    MessageFigures,
    MessagesReport,
    ReportRange,
    SlaFigures,
    SlasReport,
)
from zapflow.services import reports, reports_csv
from zapflow.services.company_settings import cached_company
from zapflow.services.permissions import Permission
from zapflow.services.queries import get_scoped

router = APIRouter(
    prefix="/reports", tags=["reports"], dependencies=[Requires(Permission.REPORTS_READ)]
)
MAX_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)
CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV (header row first) with format=csv",
    }
}

From = Annotated[date | None, Query(alias="from", description="First day (default: 29 days ago)")]
To = Annotated[date | None, Query(alias="to", description="Last day, included (default: today)")]
TeamFilter = Annotated[uuid.UUID | None, Query(description="Only this team's conversations")]
Format = Annotated[Literal["json", "csv"], Query(description="json, or csv to download")]


async def _range(
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
    start: From = None,
    end: To = None,
    team_id: TeamFilter = None,
) -> ReportRange:
    """The range asked for, in the company's time zone; another company's team is a 404."""
    company = await cached_company(state.cache, state.sessions, principal.company_id)
    zone = company["timezone"]
    today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
    default_start, default_end = reports.default_range(today)
    start, end = start or default_start, end or default_end
    for name, day in (("query.from", start), ("query.to", end)):
        if not EARLIEST <= day <= LATEST:
            raise _invalid(name, f"must be between {EARLIEST} and {LATEST}")
    if end < start:
        raise _invalid("query.to", "must not be before `from`")
    if (end - start).days >= MAX_DAYS:
        raise _invalid("query.from", f"a range is at most {MAX_DAYS} days")
    if team_id is not None:
        try:
            await get_scoped(session, Team, principal.company_id, team_id)
        except NotFound:
            raise NotFound("team_id: no team with this id in your company") from None
    return ReportRange(start=start, end=end, timezone=zone, team_id=team_id)


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(
        f"{field}: {message}", details=[{"field": field, "message": message, "type": "range"}]
    )


Range = Annotated[ReportRange, Depends(_range)]


def _csv(name: str, period: ReportRange, body: str) -> Response:
    filename = f"{name}-{period.start}-{period.end}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _grouped(
    name: str,
    shapes: tuple[type[BaseModel], type[ConversationsReport | SlasReport]],
    period: ReportRange,
    group_by: GroupBy,
    rows: Sequence[Any],
    format: str,
) -> Any:
    """Figures by day, team or agent: the report's JSON, or a CSV row per group."""
    figures, report = shapes
    if format == "csv":
        body = reports_csv.figures_csv(figures, rows)
        return _csv(f"{name}-by-{group_by}", period, body)
    return report(range=period, group_by=group_by, rows=list(rows))


@router.get(
    "/conversations",
    summary="Conversations opened and closed, first response and resolution times (p50, p90)",
    response_model=ConversationsReport,
    responses=CSV,
)
async def conversations_report(
    principal: CurrentPrincipal,
    session: SessionDep,
    period: Range,
    group_by: GroupBy = GroupBy.DAY,
    format: Format = "json",
) -> Any:
    rows = await reports.conversation_figures(session, principal.company_id, period, group_by)
    shapes = (ConversationFigures, ConversationsReport)
    return _grouped("conversations", shapes, period, group_by, rows, format)


@router.get(
    "/slas",
    summary="SLA targets met and missed (first response, resolution) by day, team or agent",
    response_model=SlasReport,
    responses=CSV,
)
async def slas_report(
    principal: CurrentPrincipal,
    session: SessionDep,
    period: Range,
    group_by: GroupBy = GroupBy.DAY,
    format: Format = "json",
) -> Any:
    rows = await reports.sla_figures(session, principal.company_id, period, group_by)
    return _grouped("slas", (SlaFigures, SlasReport), period, group_by, rows, format)


@router.get(
    "/messages",
    summary="Messages in and out per day, by people and by automation (all teams)",
    response_model=MessagesReport,
    responses=CSV,
)
async def messages_report(
    principal: CurrentPrincipal, session: SessionDep, period: Range, format: Format = "json"
) -> Any:
    now = datetime.now(UTC)
    rows = await reports.message_figures(session, principal.company_id, period, now)
    if format == "csv":
        return _csv("messages", period, reports_csv.figures_csv(MessageFigures, rows))
    return MessagesReport(range=period, rows=rows)


@router.get(
    "/heatmap",
    summary="Busiest hours: inbound messages by weekday and hour (all teams)",
    response_model=HeatmapReport,
    responses=CSV,
)
async def heatmap_report(
    principal: CurrentPrincipal, session: SessionDep, period: Range, format: Format = "json"
) -> Any:
    report = await reports.heatmap(session, principal.company_id, period, datetime.now(UTC))
    if format == "csv":
        return _csv("heatmap", period, reports_csv.heatmap_csv(report))
    return report


@router.get(
    "/csat",
    summary="CSAT: ratings asked for and given, average and distribution",
    response_model=CsatReport,
    responses=CSV,
)
async def csat_report(
    principal: CurrentPrincipal, session: SessionDep, period: Range, format: Format = "json"
) -> Any:
    report = await reports.csat_report(session, principal.company_id, period)
    if format == "csv":
        return _csv("csat", period, reports_csv.csat_csv(report))
    return report
