"""The caller's company: its name, time zone, business hours, AI prompt and settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.state import AppState
from zapflow.api.validation import NotNull
from zapflow.db import after_commit
from zapflow.models import Company
from zapflow.services import companies as service
from zapflow.services.ai_agent import AISettings, availability
from zapflow.services.companies import BusinessHours, CompanySettings, Timezone
from zapflow.services.company_settings import cached_company, company_key
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/company", tags=["company and access"])


class CompanyUpdate(BaseModel):
    """Only the fields sent change; ``ai_prompt`` may be ``null`` (no prompt), the others may
    not. Dictionaries are replaced, not merged."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "timezone": "America/Sao_Paulo",
                    "business_hours": {
                        "mon": [["09:00", "12:00"], ["13:00", "18:00"]],
                        "sat": [["09:00", "13:00"]],
                    },
                },
                {"ai_prompt": "Você é a assistente da Acme. Responda em português, com gentileza."},
            ]
        },
    )

    name: Annotated[str | None, NotNull] = Field(None, min_length=1, max_length=200)
    timezone: Annotated[Timezone | None, NotNull] = Field(
        None, description="IANA name, e.g. America/Sao_Paulo"
    )
    business_hours: Annotated[BusinessHours | None, NotNull] = Field(
        None,
        description="Opening ranges per day (mon..sun), HH:MM, non-overlapping; "
        "a missing day is closed",
    )
    ai_prompt: str | None = Field(None, max_length=20_000)
    ai_settings: Annotated[AISettings | None, NotNull] = None
    settings: Annotated[CompanySettings | None, NotNull] = None


class AIStatus(BaseModel):
    available: bool = Field(description="A model provider is configured (ZAPFLOW_AI_BASE_URL)")
    enabled: bool = Field(description="The company turned its AI agent on (ai_settings.enabled)")
    reason: str | None = Field(description="Why the agent does not answer, if it does not")


class CompanyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    timezone: str
    business_hours: dict[str, list[list[str]]]
    ai_prompt: str | None
    ai_settings: dict[str, Any]
    ai_status: AIStatus
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _public(company: Company | dict[str, Any], state: AppState) -> CompanyPublic:
    fields = company if isinstance(company, dict) else company.model_dump()
    return CompanyPublic.model_validate(
        {**fields, "ai_status": availability(state.settings, company)}
    )


@router.get(
    "",
    summary="The caller's company",
    response_model=CompanyPublic,
    dependencies=[Requires(Permission.COMPANY_READ)],
)
async def get_company(principal: CurrentPrincipal, state: StateDep) -> Any:
    company = await cached_company(state.cache, state.sessions, principal.company_id)
    return _public(company, state)


@router.patch(
    "",
    summary="Change the company's name, time zone, business hours, AI prompt or settings",
    response_model=CompanyPublic,
    dependencies=[Requires(Permission.COMPANY_MANAGE)],
)
async def update_company(
    body: CompanyUpdate, principal: CurrentPrincipal, session: SessionDep, state: StateDep
) -> Any:
    company = await service.get_company(session, principal.company_id)
    changes = body.model_dump(exclude_unset=True)
    await service.update_company(
        session, company, changes, state.settings.rate_limit_max_per_minute
    )
    after_commit(session, partial(state.cache.invalidate, company_key(company.id)))
    return _public(company, state)
