"""Media files: what agents upload for canned responses and the composer, stored in Postgres.

Bounded as they come: an upload is counted while it streams and refused past its limit (413,
before the rest is read: at most ``MAX_BYTES`` is ever held), and its type is sniffed from its
first bytes (422 for anything but the few types WhatsApp takes and we recognise; the client's
Content-Type and file name are never trusted for it). A message or a canned response names a
file by ``media_id`` where it would give a ``url``; the send activity hands Meta an expiring
signed link to ``GET /media/{id}`` (Meta fetches a Cloud API ``link`` from the internet) and
gives Evolution the bytes, as it does for a URL it downloads. Another company's file is not
found.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import NotFound, PayloadTooLarge, Unprocessable
from zapflow.models import MediaFile, MediaFileContent
from zapflow.services.auth import Principal

MAX_BYTES = 16 * 1024 * 1024  # Meta's limit for audio and video; what a send downloads too
KIND_MAX_BYTES = {"image": 5 * 1024 * 1024}  # Meta refuses larger images at send time
SNIFF_BYTES = 12
CHUNK_BYTES = 256 * 1024  # what one read of a file's bytes returns
LINK_SECONDS = 3600  # a provider's link: made at each send attempt, so an hour is plenty
# kinds a file may be sent as: its own, or any as a document
SENDABLE_AS = {"image": {"image", "document"}, "audio": {"audio", "document"},
               "video": {"video", "document"}, "document": {"document"}}  # fmt: skip


def sniff(head: bytes) -> tuple[str, str] | None:
    """(MIME type, kind) from a file's first bytes, or None: not a type we accept."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "image"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "image"
    if head.startswith(b"%PDF-"):
        return "application/pdf", "document"
    if head.startswith(b"OggS"):
        return "audio/ogg", "audio"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg", "audio"
    if head[4:8] == b"ftyp":  # ISO base media: the brand tells sound from film
        return ("audio/mp4", "audio") if head[8:11] == b"M4A" else ("video/mp4", "video")
    return None


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"file: over {limit // (1024 * 1024)} MB",
        details={"field": "file", "limit_bytes": limit},
    )


def _sniffed(head: bytes) -> tuple[str, str]:
    found = sniff(head)
    if found is None:
        raise Unprocessable(
            "file: not a JPEG, PNG, PDF, MP4, OGG or MP3 file (read from its content)",
            code="unsupported_media_type",
            details={"field": "file"},
        )
    return found


async def read_upload(chunks: AsyncIterator[bytes]) -> tuple[bytes, str, str]:
    """The upload's bytes, MIME type and kind: refused as soon as it passes the limit or its
    first bytes are of no type we accept."""
    data = bytearray()
    found: tuple[str, str] | None = None
    limit = MAX_BYTES  # then its kind's, once known
    async for chunk in chunks:
        data += chunk
        if found is None and len(data) >= SNIFF_BYTES:
            found = _sniffed(bytes(data[:SNIFF_BYTES]))
            limit = KIND_MAX_BYTES.get(found[1], MAX_BYTES)
        if len(data) > limit:
            raise too_large(limit)
    mime_type, kind = found or _sniffed(bytes(data))
    return bytes(data), mime_type, kind


def clean_filename(name: str | None) -> str | None:
    """The last path segment, without control characters, at most 255 characters."""
    if not name:
        return None
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in last if c.isprintable()).strip()[:255]
    return cleaned or None


async def create_media_file(
    session: AsyncSession,
    principal: Principal,
    upload: tuple[bytes, str, str],
    filename: str | None,
) -> MediaFile:
    data, mime_type, kind = upload
    row = MediaFile(
        company_id=principal.company_id,
        user_id=principal.user_id,
        filename=clean_filename(filename),
        mime_type=mime_type,
        kind=kind,
        size_bytes=len(data),
        signing_key=secrets.token_bytes(32),
    )
    session.add(row)
    await session.flush()
    session.add(MediaFileContent(id=row.id, data=data))
    await session.flush()
    return row


async def get_media_file(
    session: AsyncSession, company_id: uuid.UUID, media_id: uuid.UUID
) -> MediaFile:
    row = await session.get(MediaFile, media_id)
    if row is None or row.company_id != company_id:
        raise NotFound("media file not found", details={"media_id": str(media_id)})
    return row


async def referenced_media(
    session: AsyncSession, company_id: uuid.UUID, media: dict[str, Any], field: str
) -> dict[str, Any]:
    """A message's or canned response's ``media`` naming an uploaded file, completed from it
    (its sniffed MIME type, its name unless one is given): 404 for a file not the company's,
    422 naming ``<field>.kind`` for a kind it cannot be sent as."""
    if media.get("media_id") is None:
        return media
    row = await get_media_file(session, company_id, uuid.UUID(str(media["media_id"])))
    if media["kind"] not in SENDABLE_AS[row.kind]:
        kinds = " or ".join(sorted(SENDABLE_AS[row.kind]))
        raise Unprocessable(
            f"{field}.kind: a {row.mime_type} file goes as {kinds}",
            details={"field": f"{field}.kind"},
        )
    return {**media, "mime_type": row.mime_type, "filename": media.get("filename") or row.filename}


def signature(key: bytes, media_id: uuid.UUID, expires: int) -> str:
    return hmac.new(key, f"{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_path(row: MediaFile) -> str:
    """The path of an expiring link to the file's bytes, for a provider to fetch."""
    expires = int(time.time()) + LINK_SECONDS
    return (
        f"/media/{row.id}?expires={expires}&signature={signature(row.signing_key, row.id, expires)}"
    )


async def signed_media_file(
    session: AsyncSession, media_id: uuid.UUID, expires: int, given: str
) -> MediaFile:
    """The file a link names, if its signature is the file's and it has not expired; else
    not found (nothing tells a forged link from an expired one or a deleted file)."""
    row = await session.get(MediaFile, media_id)
    fresh = expires >= time.time()
    if (
        row is None
        or not fresh
        or not hmac.compare_digest(signature(row.signing_key, media_id, expires), given)
    ):
        raise NotFound("media file not found")
    return row


async def content_chunks(pool: asyncpg.Pool, row: MediaFile) -> AsyncIterator[bytes]:
    """The file's bytes, a chunk per query (no connection held between chunks)."""
    for offset in range(0, row.size_bytes, CHUNK_BYTES):
        chunk = await pool.fetchval(
            "SELECT substring(data FROM $2 FOR $3) FROM media_file_contents WHERE id = $1",
            row.id,
            offset + 1,
            CHUNK_BYTES,
        )
        if chunk is None:
            return  # deleted meanwhile: the response ends short of its length
        yield chunk


async def content(session: AsyncSession, company_id: uuid.UUID, media_id: uuid.UUID) -> bytes:
    """A file's bytes whole (at most ``MAX_BYTES``): what a send hands Evolution."""
    data = await session.scalar(
        select(col(MediaFileContent.data))
        .join(MediaFile, col(MediaFile.id) == col(MediaFileContent.id))
        .where(col(MediaFile.id) == media_id, col(MediaFile.company_id) == company_id)
    )
    if data is None:
        raise NotFound("media file not found")
    return bytes(data)


def download_headers(row: MediaFile) -> dict[str, str]:
    """Served as a download of its sniffed type: never rendered by a browser as a page of ours
    (no stored XSS); every response also carries ``X-Content-Type-Options: nosniff`` and the
    API's Content-Security-Policy (``api/headers.py``)."""
    name = row.filename or f"{row.id}"
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'")
    return {
        "Content-Type": row.mime_type,
        "Content-Length": str(row.size_bytes),
        "Content-Disposition": (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
        ),
        "Cache-Control": "private, max-age=3600",
    }
