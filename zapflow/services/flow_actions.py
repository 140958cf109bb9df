"""The CRM changes flow steps make (create or move a deal, update the contact, hand off to a
human), each through the same service operation the API uses, so a flow can store nothing the API
would refuse and each change announces itself the same way."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Unprocessable
from zapflow.models import Contact, FlowRun, Funnel, Stage
from zapflow.schemas.contacts import MAX_NAME_LENGTH, parse_update
from zapflow.schemas.deals import DealPublic
from zapflow.services import contacts, deals, routing
from zapflow.services.desk import assign_conversation, change_conversation
from zapflow.services.events import Event, stage


async def _funnel(session: AsyncSession, company_id: uuid.UUID, ref: str) -> Funnel:
    query = select(Funnel).where(col(Funnel.company_id) == company_id)
    query = query.where(_id_or_name(Funnel, ref)).order_by(col(Funnel.created_at)).limit(1)
    funnel = (await session.execute(query)).scalar_one_or_none()
    if funnel is None:
        raise Unprocessable(f"funnel: no funnel {ref!r} in this company")
    return funnel


async def _stage(session: AsyncSession, funnel_id: uuid.UUID, ref: str) -> Stage:
    query = select(Stage).where(col(Stage.funnel_id) == funnel_id, _id_or_name(Stage, ref))
    found = (await session.execute(query.limit(1))).scalar_one_or_none()
    if found is None:
        raise Unprocessable(f"stage: no stage {ref!r} in this funnel")
    return found


def _id_or_name(model: type[Funnel] | type[Stage], ref: str) -> Any:
    try:
        return or_(col(model.id) == uuid.UUID(ref), col(model.name) == ref)
    except ValueError:
        return col(model.name) == ref


async def create_deal(session: AsyncSession, run: FlowRun, params: dict[str, Any]) -> DealPublic:
    """A deal for the run's contact, announced as ``deal.created``."""
    funnel = await _funnel(session, run.company_id, params["funnel"])
    fields: dict[str, Any] = {
        "title": params["title"][:200],
        "funnel_id": funnel.id,
        "contact_id": run.contact_id,
        "stage_id": (await _stage(session, funnel.id, params["stage"])).id
        if params.get("stage")
        else None,
    }
    if params.get("value") is not None:
        fields["value"] = Decimal(str(params["value"])).quantize(Decimal("0.01"))
    return await deals.create_deal(session, run.company_id, fields, None)


async def move_deal(session: AsyncSession, run: FlowRun, params: dict[str, Any]) -> None:
    """Move the deal named by the node's variable, announced as ``deal.moved`` (unless it was
    there already)."""
    try:
        deal_id = uuid.UUID(str(params.get("deal_id")))
    except ValueError:
        raise Unprocessable("deal: the run has no deal id in that variable") from None
    deal = await deals.lock_deal(session, run.company_id, deal_id)
    target = await _stage(session, deal.funnel_id, params["stage"])
    await deals.move_deal(session, deal, target.id, None)


async def update_contact(session: AsyncSession, run: FlowRun, params: dict[str, Any]) -> Contact:
    """The run's contact changed through the API's own operation (its validation, its cache
    invalidation): a value the API would refuse fails the step, naming the field. Custom fields
    are merged into the contact's."""
    fields: dict[str, Any] = {}
    if params.get("name"):
        fields["name"] = params["name"][:MAX_NAME_LENGTH]
    if params.get("email"):
        fields["email"] = params["email"]
    if params.get("custom_fields"):
        contact = await session.get(Contact, run.contact_id, with_for_update=True)
        assert contact is not None
        fields["custom_fields"] = {**contact.custom_fields, **params["custom_fields"]}
    data = parse_update(fields)
    return await contacts.update_contact(session, run.company_id, run.contact_id, data)


async def handoff(session: AsyncSession, run: FlowRun, params: dict[str, Any]) -> None:
    """Pause the bot in the conversation, assign it when asked, else queue it for the team it
    names (when the company has a team of that name: its routing workflow's next pass, within
    its 30 s sweep, assigns it), announce ``flow.handoff``."""
    company_id = run.company_id
    row = await change_conversation(session, company_id, run.conversation_id, {"is_paused": True})
    if params.get("assign_user_id"):
        await assign_conversation(
            session, company_id, run.conversation_id, uuid.UUID(params["assign_user_id"])
        )
    elif params.get("team") and (
        team := await routing.team_named(session, company_id, params["team"])
    ):
        await routing.queue_conversation(session, row.conversation, team)
    data = {
        "flow_run_id": str(run.id),
        "flow_id": str(run.flow_id),
        "team": params.get("team"),
        "note": params.get("note"),
        "assigned_user_id": params.get("assign_user_id"),
    }
    await stage(
        session, [Event("flow.handoff", company_id, data, conversation_id=run.conversation_id)]
    )
