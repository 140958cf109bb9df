"""Uploaded media files: an upload (the file as the request body), its description, its bytes
for the desk (a download), and the expiring signed link providers fetch it by."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.paging import Cursor, CursorPage, Limit
from zapflow.models import MediaFile
from zapflow.schemas.media_files import MediaFileListed, MediaFilePublic
from zapflow.services import media_files as service
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/media", tags=["media"])
# the providers' links: outside /api/v1, the signature is the credential
signed_router = APIRouter(prefix="/media", include_in_schema=False)

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file itself as the body (not a form). Its type is read from its "
        "content: JPEG, PNG (images, at most 5 MB), PDF (a document), MP4 (video, or audio "
        "when M4A), OGG or MP3 (audio); at most 16 MB.",
        "content": {
            mime: {"schema": {"type": "string", "format": "binary"}}
            for mime in ("application/octet-stream", "image/jpeg", "application/pdf")
        },
    }
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such file of your company"}}


def _refuse_declared_too_large(request: Request) -> None:
    length = request.headers.get("content-length", "")
    if length.isdecimal() and int(length) > service.MAX_BYTES:
        raise service.too_large(service.MAX_BYTES)


@router.post(
    "",
    status_code=201,
    summary="Upload a file for a canned response or a message (the body is the file)",
    response_model=MediaFilePublic,
    responses={
        413: {"description": "file: over 16 MB (images: 5 MB)"},
        422: {"description": "file: not a type WhatsApp takes that we recognise, read from it"},
    },
    openapi_extra=UPLOAD_BODY,
    dependencies=[Requires(Permission.MEDIA_WRITE)],
)
async def upload_media_file(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    filename: Annotated[str | None, Query(max_length=255, description="Shown and sent")] = None,
) -> Any:
    _refuse_declared_too_large(request)
    upload = await service.read_upload(request.stream())
    return await service.create_media_file(session, principal, upload, filename)


@router.get(
    "",
    summary="The company's files, newest first, with their uploader and what names them",
    response_model=CursorPage[MediaFileListed],
    dependencies=[Requires(Permission.MEDIA_READ)],
)
async def list_media_files(
    principal: CurrentPrincipal,
    session: SessionDep,
    kind: Literal["image", "audio", "video", "document"] | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    rows, next_cursor = await service.list_media_files(
        session, principal.company_id, kind, limit, cursor
    )
    return CursorPage[MediaFileListed].of(rows, next_cursor)


@router.delete(
    "/{media_id}",
    status_code=204,
    summary="Delete a file nothing names (its uploader's, or anyone's for supervisors and admins)",
    responses={
        **NOT_FOUND,
        403: {"description": "another user's file, and no `media:manage`"},
        409: {"description": "canned responses or messages name it (`media_in_use`, naming them)"},
    },
    dependencies=[Requires(Permission.MEDIA_WRITE)],
)
async def delete_media_file(
    media_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await service.delete_media_file(session, principal, media_id)
    return Response(status_code=204)


@router.get(
    "/{media_id}",
    summary="An uploaded file's description",
    response_model=MediaFilePublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.MEDIA_READ)],
)
async def get_media_file(
    media_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Any:
    return await service.get_media_file(session, principal.company_id, media_id)


def _download(state: Any, row: MediaFile) -> StreamingResponse:
    chunks: AsyncIterator[bytes] = service.content_chunks(state.driver_pool, row)
    return StreamingResponse(chunks, headers=service.download_headers(row))


@router.get(
    "/{media_id}/content",
    summary="An uploaded file's bytes, as a download",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": {}}}},
    dependencies=[Requires(Permission.MEDIA_READ)],
)
async def media_file_content(
    media_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, state: StateDep
) -> StreamingResponse:
    return _download(state, await service.get_media_file(session, principal.company_id, media_id))


@signed_router.get("/{media_id}")
async def signed_media_file(
    media_id: uuid.UUID, expires: int, signature: str, session: SessionDep, state: StateDep
) -> StreamingResponse:
    """What a provider fetches: any mismatch is a 404, whatever it was."""
    return _download(state, await service.signed_media_file(session, media_id, expires, signature))
