"""Flows: drafts (JSON or YAML, validated node by node), publishing immutable versions, the
language's JSON Schema, Mermaid diagrams, simulation, and runs (start, list, read with their
transcript, cancel).

A flow document is read by the ``FlowDocument`` dependency, after the caller is authenticated:
its size is checked before it is read whole (413), and it is parsed on a worker thread, YAML
without anchors or aliases and nesting within bounds (400), so no unauthenticated request, and no
document, costs the event loop more than reading its bytes.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError

from zapflow.api.deps import (
    CurrentPrincipal,
    EgressDep,
    Requires,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from zapflow.api.paging import Cursor, CursorPage, Limit
from zapflow.api.validation import unstorable_error, unstorable_fields
from zapflow.config import Settings
from zapflow.db import after_commit
from zapflow.errors import PayloadTooLarge, ServiceUnavailable, Unprocessable, ZapflowError
from zapflow.flows import limits
from zapflow.flows.graph import mermaid
from zapflow.flows.language import (
    DocumentRefused,
    FlowDefinition,
    load_document,
    load_json_document,
)
from zapflow.flows.schedules import SCHEDULED, sync_schedules
from zapflow.flows.simulate import SimulationTooLong, simulate_bounded
from zapflow.models import Flow, FlowStatus
from zapflow.schemas.flows import (
    FlowCheck,
    FlowPublic,
    FlowRunDetail,
    FlowRunPublic,
    FlowVersionPublic,
    FlowVersionSummary,
    NodeRuns,
    PublishRequest,
    RunCreate,
    SimulateRequest,
    SimulationPublic,
    VersionNumber,
)
from zapflow.services import flow_runs
from zapflow.services import flows as service
from zapflow.services.permissions import Permission
from zapflow.temporal import TemporalConnection

router = APIRouter(prefix="/flows", tags=["flows"])
runs_router = APIRouter(prefix="/flow-runs", tags=["flows"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not a flow of yours"}}
RUN_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not a run of yours"}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "the flow breaks a rule; `details` lists each with its node and field"}
}
YAML_TYPES = ("yaml", "yml")
DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A flow document (see /flows/schema), at most "
        f"{limits.MAX_DOCUMENT_BYTES // 1024} KiB; YAML without anchors or aliases",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


async def _read_document(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """The body's flow document (JSON, or YAML with a yaml content type). Depends on the
    principal so that nothing is read before the key is checked."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limits.MAX_DOCUMENT_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.MAX_DOCUMENT_BYTES:
            raise _too_large()
    is_yaml = any(kind in request.headers.get("content-type", "") for kind in YAML_TYPES)
    try:
        if is_yaml:
            text = bytes(body).decode()
            document = await anyio.to_thread.run_sync(load_document, text)
        else:
            document = await anyio.to_thread.run_sync(load_json_document, bytes(body))
    except DocumentRefused as exc:
        raise ZapflowError(f"body: {exc}", code="document_refused") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable(f"body: {exc}") from None
    unstorable = unstorable_fields(document, "body")  # YAML also spells a NUL "\0" or "\x00"
    if unstorable:
        raise unstorable_error(unstorable)
    return document


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"body: a flow document is at most {limits.MAX_DOCUMENT_BYTES} bytes")


FlowDocument = Annotated[dict[str, Any], Depends(_read_document)]
AllowIssues = Annotated[
    bool,
    Query(description="Save a draft that breaks rules (the editor's draft); publishing refuses it"),
]


def _public(row: Any) -> FlowPublic:
    return FlowPublic.model_validate(row, from_attributes=True)


@router.get(
    "/schema",
    summary="The flow language's JSON Schema, for editors to validate and autocomplete",
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def flow_schema() -> dict[str, Any]:
    return FlowDefinition.model_json_schema()


@router.post(
    "",
    status_code=201,
    summary="Create a flow from a document (JSON, or YAML with a yaml content type)",
    response_model=FlowPublic,
    responses=INVALID,
    openapi_extra=DOCUMENT_BODY,
    dependencies=[Requires(Permission.FLOWS_WRITE)],
)
async def create_flow(
    principal: CurrentPrincipal,
    document: FlowDocument,
    session: SessionDep,
    egress: EgressDep,
    allow_issues: AllowIssues = False,
) -> FlowPublic:
    company_id = principal.company_id
    return _public(await service.create_flow(session, company_id, document, egress, allow_issues))


@router.post(
    "/validate",
    summary="Check a document against every rule: its issues by node id and field (200 either way)",
    response_model=FlowCheck,
    openapi_extra=DOCUMENT_BODY,
    dependencies=[Requires(Permission.FLOWS_WRITE)],
)
async def validate_flow(document: FlowDocument, egress: EgressDep) -> FlowCheck:
    issues = await anyio.to_thread.run_sync(service.issues_of, document, egress)
    return FlowCheck(issues=issues)


@router.get(
    "",
    summary="List flows, newest first",
    response_model=CursorPage[FlowPublic],
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def list_flows(
    principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> CursorPage[FlowPublic]:
    rows, next_cursor = await service.page_flows(session, principal.company_id, limit, cursor)
    return CursorPage[FlowPublic].of(rows, next_cursor)


@router.get(
    "/{flow_id}",
    summary="Get a flow",
    response_model=FlowPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def get_flow(
    flow_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> FlowPublic:
    return _public(await service.get_flow(session, principal.company_id, flow_id))


@router.put(
    "/{flow_id}",
    summary="Replace the flow's draft (published versions and their runs are untouched)",
    response_model=FlowPublic,
    responses={**NOT_FOUND, **INVALID},
    openapi_extra=DOCUMENT_BODY,
    dependencies=[Requires(Permission.FLOWS_WRITE)],
)
async def replace_draft(
    flow_id: uuid.UUID,
    principal: CurrentPrincipal,
    document: FlowDocument,
    session: SessionDep,
    egress: EgressDep,
    allow_issues: AllowIssues = False,
) -> FlowPublic:
    flow = await service.get_flow(session, principal.company_id, flow_id)
    return _public(await service.replace_draft(session, flow, document, egress, allow_issues))


@router.delete(
    "/{flow_id}",
    status_code=204,
    summary="Archive a flow: triggers stop; runs in progress finish on their version",
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FLOWS_WRITE)],
)
async def archive_flow(
    flow_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> Response:
    flow = await service.get_flow(session, principal.company_id, flow_id)
    await service.archive(session, flow)
    _triggers_changed(session, temporal, settings, flow, list(flow.triggers))
    return Response(status_code=204)


@router.post(
    "/{flow_id}/publish",
    status_code=201,
    summary="Publish the draft as the next immutable version; new runs use it",
    response_model=FlowVersionPublic,
    responses={**NOT_FOUND, **INVALID},
    dependencies=[Requires(Permission.FLOWS_WRITE)],
)
async def publish_flow(
    flow_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    egress: EgressDep,
    body: PublishRequest | None = None,
) -> FlowVersionPublic:
    """Schedule and deal-stage triggers get their Temporal Schedules once the version is saved."""
    flow = await service.get_flow(session, principal.company_id, flow_id)
    previous = list(flow.triggers)
    note = body.note if body else None
    version = await service.publish(
        session, principal.company_id, flow_id, principal.user_id, egress, note
    )
    _triggers_changed(session, temporal, settings, flow, previous)
    return FlowVersionPublic.model_validate(version, from_attributes=True)


def _triggers_changed(
    session: AsyncSession,
    temporal: TemporalConnection,
    settings: Settings,
    flow: Flow,
    previous: list[dict[str, Any]],
) -> None:
    triggers = list(flow.triggers) if flow.status == FlowStatus.PUBLISHED else []
    if not any(t["type"] in SCHEDULED for t in [*triggers, *previous]):
        return

    async def sync() -> None:
        try:
            client = await temporal.get()
            await sync_schedules(
                client, settings, str(flow.company_id), str(flow.id), triggers, previous
            )
        except (RPCError, OSError, TimeoutError) as exc:
            raise ServiceUnavailable(
                f"saved, but Temporal could not update the flow's schedules ({exc}): retry"
            ) from None

    after_commit(session, sync)


@router.get(
    "/{flow_id}/versions",
    summary="The flow's published versions, newest first",
    response_model=CursorPage[FlowVersionSummary],
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def list_versions(
    flow_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CursorPage[FlowVersionSummary]:
    flow = await service.get_flow(session, principal.company_id, flow_id)
    rows, next_cursor = await service.page_versions(session, flow, limit, cursor)
    return CursorPage[FlowVersionSummary].of(rows, next_cursor)


@router.get(
    "/{flow_id}/versions/{version}",
    summary="One published version with its document",
    response_model=FlowVersionPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def get_version(
    flow_id: uuid.UUID, version: VersionNumber, principal: CurrentPrincipal, session: SessionDep
) -> FlowVersionPublic:
    flow = await service.get_flow(session, principal.company_id, flow_id)
    row = await service.get_version(session, flow, version)
    return FlowVersionPublic.model_validate(row, from_attributes=True)


@router.get(
    "/{flow_id}/node-runs",
    summary="Runs per version, node and status: where customers are now and where runs ended",
    response_model=list[NodeRuns],
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def node_runs(
    flow_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> list[NodeRuns]:
    flow = await service.get_flow(session, principal.company_id, flow_id)
    rows = await flow_runs.runs_per_node(session, flow)
    return [NodeRuns(version=v, node_id=n, status=s, runs=c) for v, n, s, c in rows]


@router.get(
    "/{flow_id}/diagram",
    summary="The flow's graph as Mermaid text (the draft, or ?version=)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **NOT_FOUND},
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def flow_diagram(
    flow_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    egress: EgressDep,
    version: Annotated[VersionNumber | None, Query()] = None,
) -> Response:
    flow = await service.get_flow(session, principal.company_id, flow_id)
    definition = await service.definition_of(session, flow, version, egress)
    return Response(mermaid(definition), media_type="text/plain; charset=utf-8")


@router.post(
    "/{flow_id}/simulate",
    summary="Run the flow on scripted replies: nothing is sent, the CRM is untouched",
    response_model=SimulationPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FLOWS_WRITE)],
)
async def simulate_flow(
    flow_id: uuid.UUID,
    body: SimulateRequest,
    principal: CurrentPrincipal,
    session: SessionDep,
    egress: EgressDep,
) -> SimulationPublic:
    flow = await service.get_flow(session, principal.company_id, flow_id)
    definition = await service.definition_of(session, flow, body.version, egress)
    try:
        result = await simulate_bounded(
            definition,
            body.replies,
            contact=body.contact,
            variables=body.variables,
            http_responses=body.http_responses,
        )
    except SimulationTooLong:
        raise Unprocessable(
            f"the simulation did not end within {limits.SIMULATION_SECONDS:g} s",
            code="simulation_too_long",
        ) from None
    return SimulationPublic.model_validate(result, from_attributes=True)


@router.post(
    "/{flow_id}/runs",
    status_code=202,
    summary="Start a run for a contact (in their latest conversation unless one is named)",
    response_model=FlowRunPublic,
    responses={
        **NOT_FOUND,
        409: {"description": "the flow is not published"},
        422: {"description": "the contact is not yours, or has no conversation"},
    },
    dependencies=[Requires(Permission.FLOW_RUNS_WRITE)],
)
async def start_run(
    flow_id: uuid.UUID, body: RunCreate, principal: CurrentPrincipal, session: SessionDep
) -> FlowRunPublic:
    """Answered once the start is queued, with the run (its start committed in the inbox with
    it). The conversation's workflow then starts it, or, when another run is active in that
    conversation, ends it ``cancelled`` with the reason."""
    flow = await service.get_flow(session, principal.company_id, flow_id)
    run, conversation = await flow_runs.run_for_contact(
        session, flow, body.contact_id, body.conversation_id, body.variables
    )
    await flow_runs.request_start(session, run, conversation)
    return FlowRunPublic.model_validate(run, from_attributes=True)


@router.get(
    "/{flow_id}/runs",
    summary="The flow's runs, newest first",
    response_model=CursorPage[FlowRunPublic],
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def list_runs(
    flow_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CursorPage[FlowRunPublic]:
    flow = await service.get_flow(session, principal.company_id, flow_id)
    rows, next_cursor = await flow_runs.page_runs(session, flow, limit, cursor)
    return CursorPage[FlowRunPublic].of(rows, next_cursor)


@runs_router.get(
    "/{run_id}",
    summary="A run with its step-by-step transcript",
    response_model=FlowRunDetail,
    responses=RUN_NOT_FOUND,
    dependencies=[Requires(Permission.FLOWS_READ)],
)
async def get_run(run_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    run = await flow_runs.get_run(session, principal.company_id, run_id)
    return FlowRunDetail.model_validate(run, from_attributes=True)


@runs_router.post(
    "/{run_id}/cancel",
    status_code=202,
    summary="Cancel a run: it stops at its next wait or question and ends `cancelled`",
    response_model=FlowRunPublic,
    responses=RUN_NOT_FOUND,
    dependencies=[Requires(Permission.FLOW_RUNS_WRITE)],
)
async def cancel_run(run_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    run = await flow_runs.request_cancel(session, principal.company_id, run_id)
    return FlowRunPublic.model_validate(run, from_attributes=True)
