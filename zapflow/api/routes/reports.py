"""Reports for supervisors and admins: conversations closed and how fast (by day, team or
agent), messages per day, the busiest hours, CSAT; JSON, or CSV with ``?format=csv``.

Agents are refused (``reports:read``): the figures compare people, and an agent's own are in
its inbox. Days are the company's (its time zone), both ends included, at most a year."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.schemas.reports import (
    ConversationFigures,
    ConversationsReport,
    CsatReport,
    GroupBy,
    HeatmapReport,
    MessageFigures,
    MessagesReport,
    ReportQuery,
    SlaFigures,
    SlasReport,
)
from zapflow.services import reports, reports_csv
from zapflow.services.company_settings import cached_company
from zapflow.services.permissions import Permission

router = APIRouter(
    prefix="/reports", tags=["reports"], dependencies=[Requires(Permission.REPORTS_READ)]
)
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


def _answer(query: ReportQuery, name: str, report: Any, csv: Callable[[], str]) -> Any:
    """The report, or with ``format=csv`` its CSV as a download named for it and its days."""
    if query.format != "csv":
        return report
    filename = f"{name}-{query.period.start}-{query.period.end}.csv"
    return Response(
        csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _report_query(
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
    start: From = None,
    end: To = None,
    team_id: TeamFilter = None,
    format: Format = "json",
) -> ReportQuery:
    company = await cached_company(state.cache, state.sessions, principal.company_id)
    company_id = principal.company_id
    period = await reports.asked_range(
        session, company_id, company["timezone"], start, end, team_id
    )
    return ReportQuery(company_id, period, format)


Asked = Annotated[ReportQuery, Depends(_report_query)]


@router.get(
    "/conversations",
    summary="Conversations opened and closed, first response and resolution times (p50, p90)",
    response_model=ConversationsReport,
    responses=CSV,
)
async def conversations_report(
    session: SessionDep, query: Asked, group_by: GroupBy = GroupBy.DAY
) -> Any:
    rows = await reports.conversation_figures(session, query.company_id, query.period, group_by)
    report = ConversationsReport(range=query.period, group_by=group_by, rows=rows)
    name = f"conversations-by-{group_by}"
    return _answer(query, name, report, lambda: reports_csv.figures_csv(ConversationFigures, rows))


@router.get(
    "/slas",
    summary="SLA targets met and missed (first response, resolution) by day, team or agent",
    response_model=SlasReport,
    responses=CSV,
)
async def slas_report(session: SessionDep, query: Asked, group_by: GroupBy = GroupBy.DAY) -> Any:
    rows = await reports.sla_figures(session, query.company_id, query.period, group_by)
    report = SlasReport(range=query.period, group_by=group_by, rows=rows)
    return _answer(
        query, f"slas-by-{group_by}", report, lambda: reports_csv.figures_csv(SlaFigures, rows)
    )


@router.get(
    "/messages",
    summary="Messages in and out per day, by people and by automation (all teams)",
    response_model=MessagesReport,
    responses=CSV,
)
async def messages_report(session: SessionDep, query: Asked) -> Any:
    now = datetime.now(UTC)
    rows = await reports.message_figures(session, query.company_id, query.period, now)
    report = MessagesReport(range=query.period, rows=rows)
    return _answer(query, "messages", report, lambda: reports_csv.figures_csv(MessageFigures, rows))


@router.get(
    "/heatmap",
    summary="Busiest hours: inbound messages by weekday and hour (all teams)",
    response_model=HeatmapReport,
    responses=CSV,
)
async def heatmap_report(session: SessionDep, query: Asked) -> Any:
    report = await reports.heatmap(session, query.company_id, query.period, datetime.now(UTC))
    return _answer(query, "heatmap", report, lambda: reports_csv.heatmap_csv(report))


@router.get(
    "/csat",
    summary="CSAT: ratings asked for and given, average and distribution",
    response_model=CsatReport,
    responses=CSV,
)
async def csat_report(session: SessionDep, query: Asked) -> Any:
    report = await reports.csat_report(session, query.company_id, query.period)
    return _answer(query, "csat", report, lambda: reports_csv.csat_csv(report))
