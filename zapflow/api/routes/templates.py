"""Message templates of the company's Cloud API numbers: the synced list (with filters), a sync
from the Graph API on demand, and creating or deleting a template at Meta (its validation errors
come back as 422s). Status and quality changes arrive by webhook (services/templates.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, SettingsDep
from zapflow.config import Settings
from zapflow.errors import ServiceUnavailable, Unprocessable
from zapflow.models import TemplateStatus, WhatsAppInstance
from zapflow.schemas.templates import (
    SyncRequest,
    SyncResult,
    TemplateCreate,
    TemplateList,
    TemplatePublic,
)
from zapflow.services import templates as service
from zapflow.services.deals import scoped_reference
from zapflow.services.permissions import Permission
from zapflow.whatsapp.cloud_templates import CloudTemplates
from zapflow.whatsapp.errors import ProviderError

router = APIRouter(prefix="/templates", tags=["templates"])


async def _instance(session: SessionDep, company_id: uuid.UUID, instance_id: uuid.UUID) -> Any:
    return await scoped_reference(session, WhatsAppInstance, company_id, instance_id, "instance_id")


@asynccontextmanager
async def graph_api(
    settings: Settings, instance: WhatsAppInstance
) -> AsyncIterator[CloudTemplates]:
    """The Graph API for the number's account; Meta's refusals become 422 (their message and
    code) or 503 (throttled, down)."""
    account = service.account_of(instance)
    async with httpx.AsyncClient(timeout=settings.provider_timeout_seconds) as http:
        client = CloudTemplates(
            settings.cloud_api_base_url, http, account, instance.access_token or ""
        )
        try:
            yield client
        except ProviderError as exc:
            if exc.retryable or exc.status_code is None:
                raise ServiceUnavailable(f"the Graph API did not answer: {exc.message}") from None
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            found = error if isinstance(error, dict) else {}
            said = found.get("error_user_msg") or exc.message
            details = {key: found.get(key) for key in ("code", "error_subcode", "error_user_title")}
            raise Unprocessable(f"Meta refused: {said}", details=details) from None


@router.get(
    "",
    summary="The numbers' message templates (synced from Meta)",
    response_model=TemplateList,
    dependencies=[Requires(Permission.TEMPLATES_READ)],
)
async def list_templates(
    principal: CurrentPrincipal,
    session: SessionDep,
    status: Annotated[TemplateStatus | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    language: Annotated[str | None, Query(max_length=16)] = None,
    instance_id: Annotated[uuid.UUID | None, Query()] = None,
) -> TemplateList:
    filters = service.Filters(status, category, language, instance_id)
    rows = await service.list_templates(session, principal.company_id, filters)
    return TemplateList(data=[TemplatePublic.model_validate(r) for r in rows])


@router.post(
    "/sync",
    summary="Sync a number's templates from the Graph API now",
    response_model=SyncResult,
    dependencies=[Requires(Permission.TEMPLATES_MANAGE)],
)
async def sync_templates(
    body: SyncRequest, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> SyncResult:
    instance = await _instance(session, principal.company_id, body.instance_id)
    async with graph_api(settings, instance) as graph:
        items = await graph.list_all()
    synced = await service.store_synced(session, instance, items)
    return SyncResult(instance_id=instance.id, synced=synced)


@router.post(
    "",
    summary="Submit a template to Meta for review",
    status_code=201,
    response_model=TemplatePublic,
    dependencies=[Requires(Permission.TEMPLATES_MANAGE)],
)
async def create_template(
    body: TemplateCreate, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> TemplatePublic:
    instance = await _instance(session, principal.company_id, body.instance_id)
    asked = body.model_dump(exclude={"instance_id"}, exclude_none=True)
    async with graph_api(settings, instance) as graph:
        meta = await graph.create(asked)
    template = await service.record_created(session, instance, asked, meta)
    return TemplatePublic.model_validate(template)


@router.delete(
    "/{template_id}",
    summary="Delete a template at Meta (every language of its name, as Meta does)",
    status_code=204,
    dependencies=[Requires(Permission.TEMPLATES_MANAGE)],
)
async def delete_template(
    template_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> Response:
    template = await service.get_template(session, principal.company_id, template_id)
    instance = await _instance(session, principal.company_id, template.instance_id)
    async with graph_api(settings, instance) as graph:
        await graph.delete(template.name)
    await service.record_deleted(session, template)
    return Response(status_code=204)
