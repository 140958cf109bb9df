"""The caller's company: its name, time zone, business hours, AI prompt and settings."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.state import AppState
from zapflow.db import after_commit
from zapflow.models import Company
from zapflow.schemas.companies import CompanyPublic, CompanyUpdate
from zapflow.services import companies as service
from zapflow.services.ai_agent import availability
from zapflow.services.company_settings import cached_company, company_key
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/company", tags=["company and access"])


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
    changes = body.model_dump(mode="json", exclude_unset=True)  # JSON columns: dates as text
    await service.update_company(
        session, company, changes, state.settings.rate_limit_max_per_minute
    )
    after_commit(session, partial(state.cache.invalidate, company_key(company.id)))
    return _public(company, state)
