"""Contacts under /api/v1/contacts: CRUD, offset-paged search, tags, CSV import and export.
The read by id goes through the cache; every write of a contact invalidates it after commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.lean import LeanRoute
from zapflow.api.paging import Limit, OffsetPage, PageNumber, fields_param, json_response, only
from zapflow.api.uploads import IMPORT_BODY, CsvUpload
from zapflow.errors import Unprocessable
from zapflow.schemas.contacts import (
    ContactCreate,
    ContactPublic,
    ContactUpdate,
    ImportReport,
    TagIn,
    normalize_tags,
)
from zapflow.services import contact_csv, contacts
from zapflow.services.contact_csv import ImportMode
from zapflow.services.contacts import ContactFilter
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/contacts", tags=["contacts"], route_class=LeanRoute)

ContactFields = Annotated[frozenset[str] | None, Depends(fields_param(ContactPublic))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such contact in your company"}
}


async def contact_filter(
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="With `@`: email prefix; phone-like (digits, `+`, spaces, dashes): "
            "digits anywhere in the number; otherwise a fragment of the name",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None, Query(description="Contacts having every tag given (repeatable)")
    ] = None,
    created_since: Annotated[
        datetime | None,
        Query(description="Created at or after this time (ISO 8601; UTC if no offset)"),
    ] = None,
) -> ContactFilter:
    try:
        tags = normalize_tags(tag or [])
    except ValueError as exc:
        raise Unprocessable(f"tag: {exc}") from None
    if created_since is not None and created_since.tzinfo is None:
        created_since = created_since.replace(tzinfo=UTC)
    return ContactFilter(q=q, tags=tuple(tags), created_since=created_since)


Filter = Annotated[ContactFilter, Depends(contact_filter)]


@router.get(
    "",
    summary="List and search contacts, newest first",
    response_model=OffsetPage[ContactPublic],
    dependencies=[Requires(Permission.CONTACTS_READ)],
)
async def list_contacts(
    principal: CurrentPrincipal,
    state: StateDep,
    where: Filter,
    fields: ContactFields,
    page: PageNumber = 1,
    limit: Limit = 50,
) -> Response:
    rows, total = await contacts.page_contacts(
        state.reads, principal.company_id, where, page, limit
    )
    return json_response(
        {
            "data": only(rows, fields),
            "total": total.count,
            "page": page,
            "pages": -(-total.count // limit),
            "limit": limit,
            "total_exact": total.exact,
        }
    )


@router.post(
    "",
    status_code=201,
    summary="Create a contact",
    response_model=ContactPublic,
    responses={409: {"description": "The phone number is taken: `details.existing_id` has it"}},
    dependencies=[Requires(Permission.CONTACTS_WRITE)],
)
async def create_contact(
    body: ContactCreate, principal: CurrentPrincipal, session: SessionDep
) -> ContactPublic:
    contact = await contacts.create_contact(session, principal.company_id, body)
    return await contacts.public_of(session, contact)


@router.get(
    "/export",
    summary="Export contacts as CSV (streamed; same filters as the list)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, header row first"}},
    dependencies=[Requires(Permission.CONTACTS_EXPORT)],
)
async def export_contacts(
    principal: CurrentPrincipal, state: StateDep, where: Filter
) -> StreamingResponse:
    filename = f"contacts-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
    return StreamingResponse(
        contact_csv.export_csv(state.sessions, principal.company_id, where),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(
    "/import",
    summary="Import contacts from CSV (upsert by phone number; per-row error report)",
    response_model=ImportReport,
    openapi_extra=IMPORT_BODY,
    responses={
        413: {"description": "The file is over 10 MB"},
        422: {"description": "No header row, unknown columns, or not UTF-8"},
    },
    dependencies=[Requires(Permission.CONTACTS_IMPORT)],
)
async def import_contacts(
    principal: CurrentPrincipal,
    session: SessionDep,
    upload: CsvUpload,
    mode: Annotated[
        ImportMode,
        Query(
            description="For numbers already in your contacts: `update` the given fields or `skip`"
        ),
    ] = "update",
) -> ImportReport:
    report = await contact_csv.import_contacts(session, principal.company_id, upload, mode)
    return report


@router.get(
    "/{contact_id}",
    summary="Get a contact",
    response_model=ContactPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONTACTS_READ)],
)
async def get_contact(
    contact_id: uuid.UUID,
    principal: CurrentPrincipal,
    state: StateDep,
    fields: ContactFields,
) -> Response:
    row = await contacts.cached_contact(
        state.cache, state.sessions, principal.company_id, contact_id
    )
    # the cached row is the contact's JSON already: no model to build
    wanted = fields or ContactPublic.model_fields
    return json_response({name: row[name] for name in ContactPublic.model_fields if name in wanted})


@router.patch(
    "/{contact_id}",
    summary="Update a contact (only the fields sent)",
    response_model=ContactPublic,
    responses={**NOT_FOUND, 409: {"description": "The new phone number is another contact's"}},
    dependencies=[Requires(Permission.CONTACTS_WRITE)],
)
async def update_contact(
    contact_id: uuid.UUID,
    body: ContactUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> ContactPublic:
    contact = await contacts.update_contact(session, principal.company_id, contact_id, body)
    return await contacts.public_of(session, contact)


@router.delete(
    "/{contact_id}",
    status_code=204,
    summary="Delete a contact, with its conversations, deals and notes",
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONTACTS_DELETE)],
)
async def delete_contact(
    contact_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await contacts.delete_contact(session, principal.company_id, contact_id)
    return Response(status_code=204)


@router.post(
    "/{contact_id}/tags",
    summary="Add a tag to a contact (no-op if it has it)",
    response_model=ContactPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONTACTS_WRITE)],
)
async def add_tag(
    contact_id: uuid.UUID,
    body: TagIn,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> ContactPublic:
    contact = await contacts.add_tag(session, principal.company_id, contact_id, body.tag)
    return await contacts.public_of(session, contact)


@router.delete(
    "/{contact_id}/tags/{tag}",
    status_code=204,
    summary="Remove a tag from a contact (no-op if it lacks it)",
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONTACTS_WRITE)],
)
async def remove_tag(
    contact_id: uuid.UUID,
    tag: str,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> Response:
    await contacts.remove_tag(session, principal.company_id, contact_id, tag.strip().lower())
    return Response(status_code=204)
