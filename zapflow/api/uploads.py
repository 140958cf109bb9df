"""CSV uploads (the contacts import, a campaign's CSV audience): the file as the request body
or a form's ``file`` part, refused over the size limit before it is read when the length is
declared, and spooled (counted as it streams) so the importer reads it like a file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO, Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from zapflow.errors import PayloadTooLarge, Unprocessable
from zapflow.services import contact_csv
from zapflow.services.contact_csv import MAX_IMPORT_BYTES

UPLOAD_CHUNK = 64 * 1024

IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "CSV with a header row: phone_number (required), name, email, tags "
        "(separated by `;` or `|`), custom_fields (a JSON object) and `custom.<key>` columns. "
        "An empty cell leaves the field as it is.",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


async def _upload_chunks(request: Request) -> AsyncIterator[bytes]:
    """The CSV's bytes: the ``file`` part of a form, or the request body itself."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        async for chunk in request.stream():
            yield chunk
        return
    async with request.form(max_files=1) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("file: a multipart upload needs a `file` part")
        while chunk := await upload.read(UPLOAD_CHUNK):
            yield chunk


async def spooled_upload(request: Request) -> AsyncIterator[IO[bytes]]:
    length = request.headers.get("content-length", "")
    if length.isdecimal() and int(length) > MAX_IMPORT_BYTES + UPLOAD_CHUNK:  # room for a form
        raise PayloadTooLarge(
            f"the file is over {MAX_IMPORT_BYTES // (1024 * 1024)} MB: split it",
            details={"limit_bytes": MAX_IMPORT_BYTES},
        )
    spool = await contact_csv.spool_upload(_upload_chunks(request))
    try:
        yield spool
    finally:
        spool.close()


CsvUpload = Annotated[IO[bytes], Depends(spooled_upload)]
