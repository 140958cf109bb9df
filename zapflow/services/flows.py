"""Flows: drafts and immutable published versions. A run's lifecycle lives in
``flow_runs.py``, trigger matching and audiences in ``flow_triggers.py``, the CRM changes flow
steps make in ``flow_actions.py``."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.cache import forget
from zapflow.egress import EgressPolicy
from zapflow.errors import Conflict, NotFound, Unprocessable
from zapflow.flows.language import FlowDefinition, SendTemplate
from zapflow.flows.validation import FlowIssue, InvalidFlow, parse_flow
from zapflow.models import Flow, FlowStatus, FlowVersion, Template, TemplateStatus, utc_now
from zapflow.services import templates
from zapflow.services.flow_triggers import triggers_cache_key
from zapflow.services.paging import newest_first
from zapflow.services.queries import get_scoped


def validate_definition(document: dict[str, Any], egress: EgressPolicy) -> FlowDefinition:
    """The flow, or a 422 whose details list every problem by node id and field."""
    try:
        return parse_flow(document, egress)
    except InvalidFlow as exc:
        first = exc.issues[0]
        where = f"{first.node_id}.{first.field}" if first.node_id else first.field
        raise Unprocessable(
            f"{where}: {first.message}",
            code="invalid_flow",
            details=[issue.model_dump() for issue in exc.issues],
        ) from None


async def check_templates(
    session: AsyncSession, company_id: uuid.UUID, definition: FlowDefinition
) -> None:
    """Each ``send_template`` node against the company's synced templates of its name and
    language (once it has synced any; before, there is nothing to check against): usable, and
    its params the body's, on every number holding it, since a run may send from any. A 422
    naming the node, as the editor's issues do."""
    nodes = [n for n in definition.nodes if isinstance(n, SendTemplate)]
    if not nodes:
        return
    query = select(Template).where(
        col(Template.company_id) == company_id, col(Template.status) != TemplateStatus.DELETED
    )
    synced = list(await session.scalars(query))
    for node in nodes if synced else []:
        found = [t for t in synced if (t.name, t.language) == (node.name, node.language)]
        try:
            if not found:
                raise Unprocessable(
                    f"template {node.name!r} ({node.language}) is not one of your numbers' "
                    "templates (sync them first)",
                    details={"field": "name"},
                )
            for template in found:
                templates.check_body_params(template, node.params, "name", "params")
        except Unprocessable as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            field = str(details.get("field", "name"))
            said = exc.message if exc.message.startswith(field) else f"{field}: {exc.message}"
            issue = FlowIssue(node_id=node.id, field=field, code="template", message=exc.message)
            raise Unprocessable(
                f"{node.id}.{said}", code="invalid_flow", details=[issue.model_dump()]
            ) from None


def issues_of(document: dict[str, Any], egress: EgressPolicy) -> list[FlowIssue]:
    """Every rule the document breaks, by node id and field (none: it can be published)."""
    try:
        parse_flow(document, egress)
    except InvalidFlow as exc:
        return exc.issues
    return []


def _draft(
    document: dict[str, Any], egress: EgressPolicy, allow_issues: bool
) -> tuple[str, str | None, dict[str, Any]]:
    """A draft's name, description and stored document: the normalized flow, or with
    ``allow_issues`` a document breaking rules stored as written (publishing refuses it) as
    long as it has a name."""
    try:
        flow = validate_definition(document, egress)
    except Unprocessable:
        name, description = document.get("name"), document.get("description")
        if not allow_issues or not isinstance(name, str) or not 0 < len(name) <= 200:
            raise
        return name, description if isinstance(description, str) else None, document
    return flow.name, flow.description, flow.model_dump(mode="json", exclude_unset=True)


async def create_flow(
    session: AsyncSession,
    company_id: uuid.UUID,
    document: dict[str, Any],
    egress: EgressPolicy,
    allow_issues: bool = False,
) -> Flow:
    name, description, draft = _draft(document, egress, allow_issues)
    row = Flow(company_id=company_id, name=name, description=description, draft_definition=draft)
    session.add(row)
    await session.flush()
    return row


async def get_flow(session: AsyncSession, company_id: uuid.UUID, flow_id: uuid.UUID) -> Flow:
    return await get_scoped(session, Flow, company_id, flow_id)


async def replace_draft(
    session: AsyncSession,
    flow: Flow,
    document: dict[str, Any],
    egress: EgressPolicy,
    allow_issues: bool = False,
) -> Flow:
    """A new draft; published versions, and the runs on them, are untouched."""
    flow.name, flow.description, flow.draft_definition = _draft(document, egress, allow_issues)
    flow.updated_at = utc_now()
    await session.flush()
    return flow


async def publish(
    session: AsyncSession,
    company_id: uuid.UUID,
    flow_id: uuid.UUID,
    user_id: uuid.UUID | None,
    egress: EgressPolicy,
    note: str | None = None,
) -> FlowVersion:
    """The draft as the next immutable version, used by the runs that start from now on."""
    flow = await session.get(Flow, flow_id, with_for_update=True)
    if flow is None or flow.company_id != company_id:
        raise NotFound("flow not found")
    if flow.status == FlowStatus.ARCHIVED:
        raise Conflict("the flow is archived", code="flow_archived")
    definition = validate_definition(flow.draft_definition, egress)
    await check_templates(session, company_id, definition)
    number = (flow.current_version or 0) + 1
    version = FlowVersion(
        company_id=company_id,
        flow_id=flow.id,
        version=number,
        definition=flow.draft_definition,
        published_by_user_id=user_id,
        note=note,
    )
    session.add(version)
    flow.current_version = number
    flow.status = FlowStatus.PUBLISHED
    flow.triggers = [t.model_dump(mode="json") for t in definition.triggers]
    flow.updated_at = utc_now()
    await session.flush()
    forget(session, triggers_cache_key(company_id))
    return version


async def archive(session: AsyncSession, flow: Flow) -> None:
    """No new runs (triggers stop matching); running ones finish on their version."""
    flow.status = FlowStatus.ARCHIVED
    flow.updated_at = utc_now()
    await session.flush()
    forget(session, triggers_cache_key(flow.company_id))


async def page_flows(
    session: AsyncSession, company_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Flow], str | None]:
    query = select(Flow).where(col(Flow.company_id) == company_id)
    return await newest_first(session, query, Flow.created_at, Flow.id, limit, cursor)


async def definition_of(
    session: AsyncSession, flow: Flow, version: int | None, egress: EgressPolicy
) -> FlowDefinition:
    """The draft (``version`` None: a 422 naming its issues when it breaks a rule) or a
    published version, parsed."""
    if version is None:
        return validate_definition(flow.draft_definition, egress)
    return FlowDefinition.model_validate((await get_version(session, flow, version)).definition)


async def get_version(session: AsyncSession, flow: Flow, version: int) -> FlowVersion:
    query = select(FlowVersion).where(
        col(FlowVersion.flow_id) == flow.id, col(FlowVersion.version) == version
    )
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"version {version} of this flow does not exist")
    return row


async def page_versions(
    session: AsyncSession, flow: Flow, limit: int, cursor: str | None
) -> tuple[list[FlowVersion], str | None]:
    query = select(FlowVersion).where(
        col(FlowVersion.company_id) == flow.company_id, col(FlowVersion.flow_id) == flow.id
    )
    return await newest_first(
        session, query, FlowVersion.published_at, FlowVersion.id, limit, cursor
    )
