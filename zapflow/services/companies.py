"""The caller's company: reading it, changing it, and the rules for its timezone and hours."""

from __future__ import annotations

import uuid
from functools import cache
from itertools import pairwise
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.errors import NotFound, Unprocessable
from zapflow.models import Company

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# Zero-padded, so comparing the strings compares the times.
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])]
OpeningRange = Annotated[
    list[ClockTime], Field(min_length=2, max_length=2, examples=[["09:00", "18:00"]])
]


@cache
def _zone_names() -> frozenset[str]:
    # "localtime" is a file in the zone directory, but names the server's zone, not an IANA one
    return frozenset(available_timezones() - {"localtime"})


def check_timezone(name: str) -> str:
    """An IANA zone name known to ``zoneinfo`` (``ValueError`` otherwise)."""
    if name not in _zone_names():
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/Sao_Paulo)")
    return name


def check_business_hours(hours: dict[Day, list[OpeningRange]]) -> dict[Day, list[OpeningRange]]:
    """Each day's ranges start before they end and do not overlap; returned sorted."""
    checked: dict[Day, list[OpeningRange]] = {}
    for day, ranges in hours.items():
        ordered = sorted(ranges)
        for start, end in ordered:
            if start >= end:
                raise ValueError(f"{day}: {start}-{end} does not start before it ends")
        for (start, end), (next_start, next_end) in pairwise(ordered):
            if next_start < end:
                raise ValueError(f"{day}: {start}-{end} overlaps {next_start}-{next_end}")
        checked[day] = ordered
    return checked


class MessageTemplate(BaseModel):
    """A WhatsApp message template the company had approved (what may be sent outside the
    24-hour customer-service window)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=512, examples=["retomar_contato"])
    language: str = Field("en_US", max_length=16, examples=["pt_BR"])
    parameters: int = Field(0, ge=0, le=20, description="How many body parameters it takes")


class CompanySettings(BaseModel):
    """Per-company knobs; the ones zapflow reads are checked, others are kept as given."""

    model_config = ConfigDict(extra="allow")

    rate_limits: dict[str, Annotated[StrictInt, Field(gt=0)]] | None = Field(
        None,
        description="Requests per minute per API key, by route group (`contacts`, ...) "
        "or `default`",
        examples=[{"default": 600, "contacts": 120}],
    )
    templates: list[MessageTemplate] | None = Field(
        None, description="Approved message templates follow-ups and flows may send"
    )


Timezone = Annotated[str, AfterValidator(check_timezone)]
BusinessHours = Annotated[dict[Day, list[OpeningRange]], AfterValidator(check_business_hours)]


async def get_company(session: AsyncSession, company_id: uuid.UUID) -> Company:
    company = await session.get(Company, company_id)
    if company is None:  # only if it was deleted while its key was cached
        raise NotFound("company not found")
    return company


async def update_company(
    session: AsyncSession, company: Company, changes: dict[str, Any], max_rate_limit: int
) -> None:
    """Applies ``changes``; a rate limit above the operator's maximum (``max_rate_limit``,
    ZAPFLOW_RATE_LIMIT_MAX_PER_MINUTE) is refused: a company cannot raise its own limits past
    what the operator allows every tenant."""
    limits = (changes.get("settings") or {}).get("rate_limits") or {}
    for group, limit in limits.items():
        if limit > max_rate_limit:
            raise Unprocessable(
                f"settings.rate_limits.{group}: at most {max_rate_limit} requests per minute",
                details={"field": f"settings.rate_limits.{group}", "max": max_rate_limit},
            )
    for name, value in changes.items():
        setattr(company, name, value)
    await session.flush()
