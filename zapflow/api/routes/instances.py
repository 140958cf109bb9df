"""WhatsApp instances: connect a number (Cloud API or Evolution API) and get its webhook URL."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, SettingsDep, StateDep
from zapflow.config import Settings
from zapflow.models import WhatsAppInstance, WhatsAppProvider
from zapflow.schemas.instances import InstanceCreate, InstancePublic, InstanceUpdate
from zapflow.services import instances as service
from zapflow.services.auth import Principal
from zapflow.services.permissions import Permission
from zapflow.whatsapp import evolution

router = APIRouter(prefix="/instances", tags=["instances"])


def public_base_url(settings: Settings, request: Request) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


def to_public(
    instance: WhatsAppInstance, settings: Settings, request: Request, principal: Principal
) -> InstancePublic:
    """The instance as ``principal`` may see it: what lets one post to its webhook (the URL,
    the verify token, the JWT key) only to whoever manages instances."""
    base_url = public_base_url(settings, request)
    jwt_key = (
        evolution.instance_jwt_key(settings.evolution_jwt_key, instance.webhook_secret)
        if instance.provider == WhatsAppProvider.EVOLUTION
        else None
    )
    public = InstancePublic(
        **instance.model_dump(
            include={
                "id",
                "name",
                "provider",
                "phone_number_id",
                "evolution_instance",
                "display_phone",
                "status",
                "verify_token",
                "settings",
                "created_at",
                "updated_at",
            }
        ),
        webhook_url=f"{base_url}/webhooks/{instance.provider.value}/{instance.webhook_secret}",
        has_access_token=bool(instance.access_token),
        has_app_secret=bool(instance.app_secret),
        has_api_key=bool(instance.api_key),
        evolution_jwt_key=jwt_key,
    )
    if principal.can(Permission.INSTANCES_MANAGE):
        return public
    hidden = {"webhook_url": None, "verify_token": None, "evolution_jwt_key": None}
    return public.model_copy(update=hidden)


@router.post(
    "",
    status_code=201,
    summary="Connect a WhatsApp number",
    response_model=InstancePublic,
    dependencies=[Requires(Permission.INSTANCES_MANAGE)],
)
async def create_instance(
    body: InstanceCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> InstancePublic:
    instance = await service.create_instance(session, principal.company_id, body.model_dump())
    return to_public(instance, settings, request, principal)


@router.get(
    "",
    summary="List the company's instances",
    response_model=list[InstancePublic],
    dependencies=[Requires(Permission.INSTANCES_READ)],
)
async def list_instances(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, request: Request
) -> list[InstancePublic]:
    rows = await service.list_instances(session, principal.company_id)
    return [to_public(i, settings, request, principal) for i in rows]


@router.get(
    "/{instance_id}",
    summary="Get an instance",
    response_model=InstancePublic,
    dependencies=[Requires(Permission.INSTANCES_READ)],
)
async def get_instance(
    instance_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> InstancePublic:
    instance = await service.get_instance(session, principal.company_id, instance_id)
    return to_public(instance, settings, request, principal)


@router.patch(
    "/{instance_id}",
    summary="Update an instance",
    response_model=InstancePublic,
    dependencies=[Requires(Permission.INSTANCES_MANAGE)],
)
async def update_instance(
    instance_id: uuid.UUID,
    body: InstanceUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    request: Request,
) -> InstancePublic:
    instance = await service.get_instance(session, principal.company_id, instance_id)
    await service.update_instance(session, instance, body.model_dump(exclude_unset=True))
    state.webhook_instances.forget()
    return to_public(instance, settings, request, principal)


@router.delete(
    "/{instance_id}",
    status_code=204,
    summary="Disconnect and delete an instance",
    dependencies=[Requires(Permission.INSTANCES_MANAGE)],
)
async def delete_instance(
    instance_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, state: StateDep
) -> Response:
    instance = await service.get_instance(session, principal.company_id, instance_id)
    await session.delete(instance)
    state.webhook_instances.forget()
    return Response(status_code=204)
