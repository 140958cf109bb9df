"""Media files: what agents upload for canned responses and the composer, stored in Postgres.

Bounded as they come: an upload is counted while it streams and refused past its limit (413,
before the rest is read: at most ``MAX_BYTES`` is ever held), and its type is sniffed from its
first bytes (422 for anything but the few types WhatsApp takes and we recognise; the client's
Content-Type and file name are never trusted for it). A message or a canned response names a
file by ``media_id`` where it would give a ``url``; the send activity hands Meta an expiring
signed link to ``GET /media/{id}`` (Meta fetches a Cloud API ``link`` from the internet) and
gives Evolution the bytes, as it does for a URL it downloads. Another company's file is not
found.

A file is kept while anything names it: a canned response (deleting it is refused, naming the
responses) or a message (the thread's record, downloadable from the desk, and the bytes a send
still retrying needs). Its uploader, or a supervisor or admin (``media:manage``), deletes it once
nothing does; files named by nothing past ``media_retention_days`` are swept by the
``media-retention`` Schedule. Attaching a file key-share locks its row, so a deletion or a sweep
never removes a file a commit is about to name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import asyncpg
from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text
from sqlmodel import col

from zapflow.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from zapflow.models import MediaFile, MediaFileContent, User
from zapflow.services.auth import Principal
from zapflow.services.paging import newest_first
from zapflow.services.permissions import Permission

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
    session: AsyncSession, company_id: uuid.UUID, media_id: uuid.UUID, lock: Any = None
) -> MediaFile:
    """The company's file; ``lock``: a ``with_for_update`` of its row."""
    row = await session.get(MediaFile, media_id, with_for_update=lock)
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
    media_id = uuid.UUID(str(media["media_id"]))
    # held until the naming row commits: a deletion waits, a sweep skips the file
    row = await get_media_file(session, company_id, media_id, {"read": True, "key_share": True})
    if media["kind"] not in SENDABLE_AS[row.kind]:
        kinds = " or ".join(sorted(SENDABLE_AS[row.kind]))
        raise Unprocessable(
            f"{field}.kind: a {row.mime_type} file goes as {kinds}",
            details={"field": f"{field}.kind"},
        )
    return {**media, "mime_type": row.mime_type, "filename": media.get("filename") or row.filename}


# who names each file: a canned response's attachments, a message's media
CANNED_USES = text(
    "SELECT a->>'media_id' AS media_id, c.id, c.shortcut FROM canned_responses c"
    " CROSS JOIN LATERAL jsonb_array_elements(c.attachments) a"
    " WHERE c.company_id = :company_id AND a->>'media_id' = ANY(:ids) ORDER BY c.shortcut"
).bindparams(bindparam("ids", type_=ARRAY(Text)))
# the IS NOT NULL repeats idx_messages_media_id's predicate, so the planner may use it
MESSAGE_USES = text(
    "SELECT media->>'media_id' AS media_id, count(*) AS messages FROM messages"
    " WHERE company_id = :company_id AND media->>'media_id' IS NOT NULL"
    " AND media->>'media_id' = ANY(:ids) GROUP BY 1"
).bindparams(bindparam("ids", type_=ARRAY(Text)))
UNUSED_SINCE = """
    SELECT f.id FROM media_files f WHERE f.created_at < :before
    AND NOT EXISTS (SELECT 1 FROM canned_responses c
        CROSS JOIN LATERAL jsonb_array_elements(c.attachments) a
        WHERE c.company_id = f.company_id AND a->>'media_id' = f.id::text)
    AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.company_id = f.company_id
        AND m.media->>'media_id' IS NOT NULL AND m.media->>'media_id' = f.id::text)
    ORDER BY f.created_at LIMIT :limit FOR UPDATE SKIP LOCKED
"""


async def uses(
    session: AsyncSession, company_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """What names each file: ``{"canned_responses": [{id, shortcut}], "messages": n}``."""
    found: dict[uuid.UUID, dict[str, Any]] = {
        i: {"canned_responses": [], "messages": 0} for i in ids
    }
    params = {"company_id": company_id, "ids": [str(i) for i in ids]}
    for media_id, canned_id, shortcut in await session.execute(CANNED_USES, params):
        found[uuid.UUID(media_id)]["canned_responses"].append(
            {"id": canned_id, "shortcut": shortcut}
        )
    for media_id, messages in await session.execute(MESSAGE_USES, params):
        found[uuid.UUID(media_id)]["messages"] = messages
    return found


async def list_media_files(
    session: AsyncSession,
    company_id: uuid.UUID,
    kind: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The company's files, newest first, each with its uploader and what names it."""
    query = select(MediaFile).where(col(MediaFile.company_id) == company_id)
    if kind is not None:
        query = query.where(col(MediaFile.kind) == kind)
    rows, next_cursor = await newest_first(
        session, query, MediaFile.created_at, MediaFile.id, limit, cursor
    )
    uploaders = {r.user_id for r in rows if r.user_id is not None}
    named = await session.execute(
        select(col(User.id), col(User.name)).where(col(User.id).in_(uploaders))
    )
    names = {user_id: name for user_id, name in named}
    used = await uses(session, company_id, [r.id for r in rows])
    page = [
        {
            **{k: getattr(r, k) for k in ("id", "filename", "mime_type", "kind", "size_bytes")},
            "created_at": r.created_at,
            "uploaded_by": {"id": r.user_id, "name": names[r.user_id]} if r.user_id else None,
            "used_by": used[r.id],
        }
        for r in rows
    ]
    return page, next_cursor


async def delete_media_file(
    session: AsyncSession, principal: Principal, media_id: uuid.UUID
) -> None:
    """Its uploader's, or anyone's with ``media:manage``; refused (409) while something names
    it, saying what."""
    row = await get_media_file(session, principal.company_id, media_id, True)
    own = row.user_id is not None and row.user_id == principal.user_id
    if not own and not principal.can(Permission.MEDIA_MANAGE):
        raise Forbidden(
            "only its uploader, a supervisor or an admin can delete a file",
            details={"permission": Permission.MEDIA_MANAGE.value},
        )
    used = (await uses(session, principal.company_id, [row.id]))[row.id]
    if used["canned_responses"] or used["messages"]:
        shortcuts = ", ".join(f"/{c['shortcut']}" for c in used["canned_responses"])
        named = [f"canned responses {shortcuts}"] if shortcuts else []
        named += [f"{used['messages']} messages"] if used["messages"] else []
        raise Conflict(
            f"media file: in use by {' and '.join(named)}",
            code="media_in_use",
            details={
                "canned_responses": [
                    {"id": str(c["id"]), "shortcut": c["shortcut"]}
                    for c in used["canned_responses"]
                ],
                "messages": used["messages"],
            },
        )
    await session.delete(row)
    await session.flush()


async def sweep_unused(session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` files created before ``before`` that nothing names; how many."""
    ids = (await session.execute(text(UNUSED_SINCE), {"before": before, "limit": limit})).scalars()
    deleted = await session.execute(
        delete(MediaFile).where(col(MediaFile.id).in_(list(ids))).returning(col(MediaFile.id))
    )
    return len(deleted.all())


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
