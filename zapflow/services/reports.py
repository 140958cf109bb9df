"""Reports: conversations closed and how fast, messages, busiest hours, CSAT.

Conversation figures read ``conversation_resolutions`` (one row per closing, written by
``services/resolutions.py``), indexed by (company, closed_at): a range holds as many rows as
closings, never messages; conversations opened per day are counted between each day's local
midnights, a range of the (company, created_at) index per day. Message figures read
``message_rollups``, hourly counts per direction and sender filled up to the company's
watermark by ``roll_up`` (called by each report, and by the seed), plus the messages after the
watermark from ``messages`` itself (an hour or so, on its (company, created_at) index). The
watermark trails the clock by ``ROLLUP_LAG``: a message's ``created_at`` is its transaction's
start, so one committed late must still find its hour open. Days are the company's (its time
zone); the rollups' hours are UTC hours, so in a zone whose offset is not whole hours (India,
Newfoundland) a day's edges are off by that half hour.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.errors import NotFound, Unprocessable
from zapflow.models import SlaKind, SlaStatus, Team
from zapflow.schemas.reports import (
    ConversationFigures,
    CsatDay,
    CsatReport,
    GroupBy,
    HeatmapReport,
    MessageFigures,
    ReportRange,
    SlaFigures,
)
from zapflow.services.queries import get_scoped

ROLLUP_LAG = timedelta(minutes=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a new company's watermark: nothing counted yet
HUMAN_SENDERS = ("agent", "phone")
DEFAULT_DAYS = 30
MAX_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)

_CLAIM = text(
    "SELECT rolled_until FROM rollup_watermarks WHERE company_id = :company_id"
    " FOR UPDATE SKIP LOCKED"
)
_READ = text("SELECT rolled_until FROM rollup_watermarks WHERE company_id = :company_id")
_START = text(
    "INSERT INTO rollup_watermarks (company_id, rolled_until) VALUES (:company_id, :epoch)"
    " ON CONFLICT DO NOTHING"
)
_FILL = text(
    """
    INSERT INTO message_rollups (company_id, hour, direction, sent_by, count)
    SELECT company_id, date_trunc('hour', created_at, 'UTC'), direction, sent_by, count(*)
      FROM messages
     WHERE company_id = :company_id AND created_at >= :since AND created_at < :until
     GROUP BY 1, 2, 3, 4
    """
)
_ADVANCE = text("UPDATE rollup_watermarks SET rolled_until = :until WHERE company_id = :company_id")


async def roll_up(session: AsyncSession, company_id: uuid.UUID, now: datetime) -> datetime:
    """Count the whole hours since the watermark into ``message_rollups``; the watermark.

    One transaction at a time fills a company's hours (the row lock); another one finding it
    taken reads the rollups up to the watermark it sees, and the rest from ``messages``.
    """
    params: dict[str, Any] = {"company_id": company_id}
    claimed = (await session.execute(_CLAIM, params)).scalar_one_or_none()
    if claimed is None:
        await session.execute(_START, {**params, "epoch": EPOCH})
        claimed = (await session.execute(_CLAIM, params)).scalar_one_or_none()
    if claimed is None:  # another transaction is filling them
        watermark: datetime | None = (await session.execute(_READ, params)).scalar_one_or_none()
        return watermark or EPOCH
    until = (now - ROLLUP_LAG).replace(minute=0, second=0, microsecond=0)
    if until <= claimed:
        return claimed
    await session.execute(_FILL, {**params, "since": claimed, "until": until})
    await session.execute(_ADVANCE, {**params, "until": until})
    return until


async def rebuild_rollups(session: AsyncSession, company_id: uuid.UUID, now: datetime) -> None:
    """Count a company's messages again from the start (after a bulk load such as the seed's,
    whose messages are older than the watermark)."""
    params = {"company_id": company_id}
    for table in ("message_rollups", "rollup_watermarks"):
        await session.execute(text(f"DELETE FROM {table} WHERE company_id = :company_id"), params)
    await roll_up(session, company_id, now)


def midnights(period: ReportRange) -> list[datetime]:
    """Where each day of the range begins, and the day after it: its first instant (fold 0: a
    midnight skipped by DST begins its day where the gap ends, a repeated one at its first)."""
    zone = ZoneInfo(period.timezone)
    days = (period.end - period.start).days + 2
    return [datetime.combine(period.start + timedelta(days=n), time(), zone) for n in range(days)]


def bounds(period: ReportRange) -> tuple[datetime, datetime]:
    """The range's first and last instants: local midnights, as UTC-aware datetimes."""
    edges = midnights(period)
    return edges[0], edges[-1]


def _filters(period: ReportRange, at: str = "r.closed_at") -> tuple[str, dict[str, Any]]:
    """The range's WHERE on the rows' instant ``at`` (and team), with its parameters."""
    start, end = bounds(period)
    params: dict[str, Any] = {"start": start, "end": end, "tz": period.timezone}
    where = f"r.company_id = :company_id AND {at} >= :start AND {at} < :end"
    if period.team_id is not None:
        where += " AND r.team_id = :team_id"
        params["team_id"] = period.team_id
    return where, params


# one sort per duration for both percentiles: an array [p50, p90]
_FIGURES = """
    count(*) AS closed,
    percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP
        (ORDER BY extract(epoch FROM r.first_response_at - r.opened_at)) AS first_response,
    percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP
        (ORDER BY extract(epoch FROM r.closed_at - r.opened_at)) AS resolution,
    count(*) FILTER (WHERE r.handled_by_human) AS handled_by_human,
    count(*) FILTER (WHERE NOT r.handled_by_human) AS handled_by_bot
"""


def _group(group_by: GroupBy, at: str = "r.closed_at") -> tuple[str, str]:
    """The key and label columns of a group (a local day of ``at``, a team, an agent) of the
    rows ``r`` (with ``team_id`` and ``user_id``), and the join naming it."""
    if group_by == GroupBy.TEAM:
        return (
            "coalesce(r.team_id::text, '') AS key, min(t.name) AS label",
            "LEFT JOIN teams t ON t.id = r.team_id",
        )
    if group_by == GroupBy.AGENT:
        return (
            "coalesce(r.user_id::text, '') AS key, min(u.name) AS label",
            "LEFT JOIN users u ON u.id = r.user_id",
        )
    return f"({at} AT TIME ZONE :tz)::date::text AS key, NULL AS label", ""


# One count per local day, between its midnights: each a range of
# idx_conversations_company_created, read index-only without a team. Converting each
# conversation's created_at to its local day and grouping by it cost 3-4x as much (53k and
# 100k conversations over the seed's 30 and 90 days): the conversion per row was the work,
# not the reading (bench/results/2026-12-03-s6-reports/EXPLAIN.md).
_OPENED = """
    SELECT d.day, (SELECT count(*) FROM conversations
                    WHERE company_id = :company_id AND created_at >= d.since
                      AND created_at < d.until {team}) AS opened
      FROM unnest(CAST(:days AS date[]), CAST(:since AS timestamptz[]),
                  CAST(:until AS timestamptz[])) AS d(day, since, until)
"""
OPENED = {
    False: text(_OPENED.format(team="")),
    True: text(_OPENED.format(team="AND team_id = :team_id")),
}


async def conversation_figures(
    session: AsyncSession, company_id: uuid.UUID, period: ReportRange, group_by: GroupBy
) -> list[ConversationFigures]:
    """Closings per day, team or agent with their first response and resolution times."""
    where, params = _filters(period)
    params["company_id"] = company_id
    key, join = _group(group_by)
    statement = text(
        f"SELECT {key}, {_FIGURES} FROM conversation_resolutions r {join}"
        f" WHERE {where} GROUP BY 1 ORDER BY 1"
    )
    rows = {row.key: row for row in await session.execute(statement, params)}
    opened: dict[str, int] = {}
    if group_by == GroupBy.DAY:
        opened = await _opened(session, params, midnights(period), period.team_id is not None)
    keys = sorted(set(rows) | set(opened))
    return [_figures(k, rows.get(k), opened.get(k), group_by) for k in keys]


async def _opened(
    session: AsyncSession, params: dict[str, Any], edges: list[datetime], team: bool
) -> dict[str, int]:
    """Conversations created per local day (the days with any), by the day's ISO date."""
    days = [edge.date() for edge in edges[:-1]]
    rows = await session.execute(
        OPENED[team], {**params, "days": days, "since": edges[:-1], "until": edges[1:]}
    )
    return {row.day.isoformat(): row.opened for row in rows if row.opened}


def _label(key: str, row: Any, group_by: GroupBy) -> str:
    return key if group_by == GroupBy.DAY else ((row.label if row else None) or "(none)")


def _figures(key: str, row: Any, opened: int | None, group_by: GroupBy) -> ConversationFigures:
    label = _label(key, row, group_by)
    values: dict[str, Any] = {"closed": 0, "handled_by_human": 0, "handled_by_bot": 0}
    if row is not None:
        values = {name: getattr(row, name) for name in values}
        for name in ("first_response", "resolution"):
            p50, p90 = getattr(row, name) or (None, None)
            values |= {f"{name}_p50": p50, f"{name}_p90": p90}
    if group_by == GroupBy.DAY:
        values["opened"] = opened or 0
    return ConversationFigures(key=key, label=label, **values)


# a target counts on the day it was decided: met when completed, missed when it breached (a
# late completion's breach is its due time); idx_sla_targets_company_decided
SLA_DECIDED = "coalesce(r.breached_at, r.completed_at)"
_SLA_COUNTS = ", ".join(
    f"count(*) FILTER (WHERE r.kind = '{kind}' AND r.status = '{status}') AS {kind}_{status}"
    for kind in SlaKind
    for status in (SlaStatus.MET, SlaStatus.MISSED)
)


async def sla_figures(
    session: AsyncSession, company_id: uuid.UUID, period: ReportRange, group_by: GroupBy
) -> list[SlaFigures]:
    """SLA targets met and missed per day, team or agent (who met or missed them)."""
    where, params = _filters(period, SLA_DECIDED)
    params["company_id"] = company_id
    key, join = _group(group_by, SLA_DECIDED)
    statement = text(
        f"SELECT {key}, {_SLA_COUNTS} FROM sla_targets r {join}"
        f" WHERE {where} AND r.status IN ('met', 'missed') GROUP BY 1 ORDER BY 1"
    )
    return [_sla_figures(row, group_by) for row in await session.execute(statement, params)]


def _sla_figures(row: Any, group_by: GroupBy) -> SlaFigures:
    values: dict[str, Any] = {}
    for kind in SlaKind:
        met, missed = getattr(row, f"{kind}_met"), getattr(row, f"{kind}_missed")
        percent = round(100 * met / (met + missed), 1) if met + missed else None
        values |= {f"{kind}_met": met, f"{kind}_missed": missed, f"{kind}_met_pct": percent}
    return SlaFigures(key=row.key, label=_label(row.key, row, group_by), **values)


# the hourly counts over a range: rollups before the watermark, messages after it
_COUNTS = """
    WITH counts AS (
        SELECT hour AS at, direction, sent_by, count FROM message_rollups
         WHERE company_id = :company_id AND hour >= :start
           AND hour < least(CAST(:end AS timestamptz), CAST(:watermark AS timestamptz))
        UNION ALL
        SELECT date_trunc('hour', created_at, 'UTC'), direction, sent_by, count(*)
          FROM messages
         WHERE company_id = :company_id
           AND created_at >= greatest(CAST(:start AS timestamptz), CAST(:watermark AS timestamptz))
           AND created_at < :end
         GROUP BY 1, 2, 3
    )
"""
_MESSAGES = text(
    _COUNTS
    + f"""
    SELECT (at AT TIME ZONE :tz)::date AS day,
           coalesce(sum(count) FILTER (WHERE direction = 'inbound'), 0) AS inbound,
           coalesce(sum(count) FILTER (WHERE direction = 'outbound'), 0) AS outbound,
           coalesce(sum(count) FILTER (WHERE direction = 'outbound'
                    AND sent_by IN {HUMAN_SENDERS}), 0) AS outbound_human,
           coalesce(sum(count) FILTER (WHERE direction = 'outbound'
                    AND sent_by NOT IN {HUMAN_SENDERS}), 0) AS outbound_bot
      FROM counts GROUP BY 1 ORDER BY 1
    """
)
_HEATMAP = text(
    _COUNTS
    + """
    SELECT extract(isodow FROM at AT TIME ZONE :tz)::int - 1 AS weekday,
           extract(hour FROM at AT TIME ZONE :tz)::int AS hour, sum(count) AS count
      FROM counts WHERE direction = 'inbound' GROUP BY 1, 2
    """
)


async def _count_params(
    session: AsyncSession, company_id: uuid.UUID, period: ReportRange, now: datetime
) -> dict[str, Any]:
    start, end = bounds(period)
    watermark = await roll_up(session, company_id, now)
    return {"company_id": company_id, "start": start, "end": end, "tz": period.timezone,
            "watermark": watermark}  # fmt: skip


async def message_figures(
    session: AsyncSession, company_id: uuid.UUID, period: ReportRange, now: datetime
) -> list[MessageFigures]:
    params = await _count_params(session, company_id, period, now)
    rows = await session.execute(_MESSAGES, params)
    return [MessageFigures.model_validate(row, from_attributes=True) for row in rows]


async def heatmap(
    session: AsyncSession, company_id: uuid.UUID, period: ReportRange, now: datetime
) -> HeatmapReport:
    params = await _count_params(session, company_id, period, now)
    cells = [[0] * 24 for _ in range(7)]
    for row in await session.execute(_HEATMAP, params):
        cells[row.weekday][row.hour] = int(row[2])  # row.count is the tuple's method
    return HeatmapReport(range=period, cells=cells, max=max(max(r) for r in cells))


_CSAT = """
    SELECT {key}
           count(*) FILTER (WHERE r.csat_status <> 'none') AS requested,
           count(r.csat_score) AS rated, avg(r.csat_score)::float AS average,
           {distribution}
      FROM conversation_resolutions r WHERE {where} {group}
"""


async def csat_report(
    session: AsyncSession, company_id: uuid.UUID, period: ReportRange
) -> CsatReport:
    where, params = _filters(period)
    params["company_id"] = company_id
    distribution = ", ".join(
        f"count(*) FILTER (WHERE r.csat_score = {score}) AS s{score}" for score in range(1, 6)
    )
    total = text(_CSAT.format(key="", distribution=distribution, where=where, group=""))
    row = (await session.execute(total, params)).one()
    by_day = text(
        _CSAT.format(
            key="(r.closed_at AT TIME ZONE :tz)::date AS day,",
            distribution="1 AS one",
            where=where + " AND r.csat_score IS NOT NULL",
            group="GROUP BY 1 ORDER BY 1",
        )
    )
    days = [
        CsatDay(day=d.day, rated=d.rated, average=d.average)
        for d in await session.execute(by_day, params)
    ]
    return CsatReport(
        range=period,
        requested=row.requested,
        rated=row.rated,
        average=row.average,
        distribution=[getattr(row, f"s{score}") for score in range(1, 6)],
        days=days,
    )


async def asked_range(
    session: AsyncSession,
    company_id: uuid.UUID,
    timezone: str,
    start: date | None,
    end: date | None,
    team_id: uuid.UUID | None,
) -> ReportRange:
    """The days asked for (by default the last ``DEFAULT_DAYS`` to today in the company's time
    zone), checked: a 422 naming ``query.from`` or ``query.to``; another company's team: a 404."""
    today = datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()
    start, end = start or today - timedelta(days=DEFAULT_DAYS - 1), end or today
    for name, day in (("query.from", start), ("query.to", end)):
        if not EARLIEST <= day <= LATEST:
            raise _invalid(name, f"must be between {EARLIEST} and {LATEST}")
    if end < start:
        raise _invalid("query.to", "must not be before `from`")
    if (end - start).days >= MAX_DAYS:
        raise _invalid("query.from", f"a range is at most {MAX_DAYS} days")
    if team_id is not None:
        try:
            await get_scoped(session, Team, company_id, team_id)
        except NotFound:
            raise NotFound("team_id: no team with this id in your company") from None
    return ReportRange(start=start, end=end, timezone=timezone, team_id=team_id)


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(
        f"{field}: {message}", details=[{"field": field, "message": message, "type": "range"}]
    )
