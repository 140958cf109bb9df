"""Each report as CSV: a header row, then one row per line of the report (the CSV export of
``GET /api/v1/reports/...?format=csv``). Names come from tenants: formula-like cells are
escaped as in the contacts' export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from zapflow.schemas.reports import CsatReport, HeatmapReport
from zapflow.services.contact_csv import safe_cell


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else safe_cell(str(v)) for v in row])
    return buffer.getvalue()


def figures_csv(shape: type[BaseModel], rows: Sequence[BaseModel]) -> str:
    """Rows of one figures' shape (conversations, SLAs, messages): a column per field."""
    header = list(shape.model_fields)
    return _csv(header, ([getattr(row, name) for name in header] for row in rows))


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def heatmap_csv(report: HeatmapReport) -> str:
    header = ["weekday", *(f"{hour:02d}" for hour in range(24))]
    return _csv(header, ([day, *cells] for day, cells in zip(WEEKDAYS, report.cells, strict=True)))


def csat_csv(report: CsatReport) -> str:
    """One row per day with ratings, then the range's total with its distribution."""
    header = ["day", "rated", "average", "score_1", "score_2", "score_3", "score_4", "score_5"]
    days = ([d.day, d.rated, d.average, "", "", "", "", ""] for d in report.days)
    total = ["total", report.rated, report.average, *report.distribution]
    return _csv(header, [*days, total])
