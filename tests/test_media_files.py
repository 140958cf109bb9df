"""Uploaded media files: the type read from the content (never the client's word), bounded
uploads (413/422 naming `file`, never a 500), downloads that no browser renders, another
company's file a 404, expiring signed links for the providers, and a canned response's and a
message's uploaded media sent through the fake provider on Cloud API (a link Meta fetches) and
Evolution (the bytes). The company's list (newest first, by kind, its uploader and what names
each file), deletion (the uploader's or a manager's; refused while named) and the retention
sweep of old files nothing names, a bounded batch at a time."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import eventually, sent_on_both_providers
from zapflow.activities.media_files import MediaActivities
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import MediaFile
from zapflow.services.media_files import KIND_MAX_BYTES, MAX_BYTES, signature, sweep_unused

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n"


async def upload(
    client: httpx.AsyncClient, content: Any, filename: str = "x", content_type: str = "image/png"
) -> httpx.Response:
    return await client.post(
        "/api/v1/media",
        params={"filename": filename},
        content=content,
        headers={"content-type": content_type},
    )


async def test_an_upload_is_typed_by_its_content_and_downloaded_never_rendered(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    # the client calls it HTML: the bytes say PDF
    made = await upload(tenant.client, PDF, "../../Preço <b>.pdf", "text/html")
    assert made.status_code == 201, made.text
    file = made.json()
    assert (file["mime_type"], file["kind"], file["size_bytes"]) == (
        "application/pdf",
        "document",
        len(PDF),
    )
    assert file["filename"] == "Preço <b>.pdf"  # the last path segment only
    assert (await tenant.client.get(f"/api/v1/media/{file['id']}")).json() == file

    got = await tenant.client.get(f"/api/v1/media/{file['id']}/content")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert "Pre%C3%A7o%20%3Cb%3E.pdf" in got.headers["content-disposition"]
    assert got.headers["x-content-type-options"] == "nosniff"

    for path in (f"/api/v1/media/{file['id']}", f"/api/v1/media/{file['id']}/content"):
        assert (await other_tenant.client.get(path)).status_code == 404


async def _chunks(size: int) -> AsyncIterator[bytes]:
    """A body sent without its length (chunked): only counting it as it comes can stop it."""
    yield PNG
    for _ in range(size // 65536):
        yield bytes(65536)


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"<html><script>alert(1)</script></html>", 422, "unsupported_media_type"),
        (b"GIF89a" + bytes(20), 422, "unsupported_media_type"),
        (b"", 422, "unsupported_media_type"),
        (b"%PDF", 422, "unsupported_media_type"),  # too short to tell
        (PDF + bytes(MAX_BYTES), 413, "payload_too_large"),  # declared: refused unread
        (PNG + bytes(KIND_MAX_BYTES["image"]), 413, "payload_too_large"),  # an image's limit
        (_chunks(MAX_BYTES + 65536), 413, "payload_too_large"),  # counted as it streams
    ],
    ids=["html", "gif", "empty", "short", "declared-large", "large-image", "chunked-large"],
)
async def test_hostile_uploads_are_refused_naming_the_file(
    tenant: Tenant, content: Any, status: int, code: str
) -> None:
    response = await upload(tenant.client, content)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"]["field"]) == (code, "file")
    assert error["message"].startswith("file: ")


async def test_an_upload_the_client_cuts_short_is_its_error_not_ours(
    tenant: Tenant, sessions: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that leaves mid-body: no file, and a client error in the logs, not a 500."""
    caplog.set_level(logging.INFO, logger="zapflow.api.errors")
    url = urlsplit(str(tenant.client.base_url))
    _, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        b"POST /api/v1/media?filename=cut HTTP/1.1\r\nHost: api\r\n"
        + f"Authorization: Bearer {tenant.api_key}\r\n".encode()
        + b"Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
        + PNG
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    async def logged() -> list[str]:  # this request's line (no other test's late request)
        lines = [r.getMessage() for r in caplog.records if r.name == "zapflow.api.errors"]
        return [line for line in lines if "POST /api/v1/media" in line]

    [message] = await eventually(logged, bool)
    assert message.startswith("client left during the request body on POST /api/v1/media")
    async with sessions() as session:
        stored = await session.scalars(
            select(MediaFile).where(col(MediaFile.company_id) == uuid.UUID(tenant.id))
        )
        assert [f.filename for f in stored] == []


async def test_media_reference_of_another_company_or_wrong_kind_is_refused(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = (await upload(other_tenant.client, PNG)).json()["id"]
    mine = (await upload(tenant.client, PDF)).json()["id"]
    for media, status, field in (
        ({"media_id": theirs, "kind": "image"}, 404, None),
        ({"media_id": mine, "kind": "image"}, 422, "attachments.0.kind"),  # a PDF is a document
        ({"media_id": mine, "url": "https://example.com/x.pdf", "kind": "document"}, 422, None),
    ):
        refused = await tenant.client.post(
            "/api/v1/canned-responses",
            json={"shortcut": "doc", "body": "x", "company_wide": True, "attachments": [media]},
        )
        assert refused.status_code == status, refused.text
        if field:
            assert refused.json()["error"]["details"]["field"] == field


def _link_parts(link: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(link)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


@pytest.mark.usefixtures("worker")
async def test_uploaded_media_goes_as_a_signed_link_to_meta_and_as_bytes_to_evolution(
    tenant: Tenant, provider_server: ProviderServer, api_url: str, sessions: SessionFactory
) -> None:
    """A canned response's uploaded attachment, sent as the composer sends it (a media message
    naming the file)."""
    file = (await upload(tenant.client, PNG, "kit.png")).json()
    saved = await tenant.client.post(
        "/api/v1/canned-responses",
        json={"shortcut": "kit", "body": "O kit", "company_wide": True,
              "attachments": [{"media_id": file["id"], "kind": "image", "caption": "Kit"}]},
    )  # fmt: skip
    assert saved.status_code == 201, saved.text
    [attachment] = saved.json()["attachments"]
    assert attachment == {
        "media_id": file["id"], "kind": "image", "caption": "Kit", "mime_type": "image/png",
        "filename": "kit.png",
    }  # fmt: skip
    cloud, evolution = await sent_on_both_providers(
        tenant, provider_server, {"type": "media", "media": attachment}
    )
    link = cloud["image"]["link"]
    assert link.startswith(f"{api_url}/media/{file['id']}?") and cloud["image"]["caption"] == "Kit"
    async with httpx.AsyncClient() as meta:  # no credential: the signature is one
        fetched = await meta.get(link)
        assert fetched.status_code == 200 and fetched.content == PNG
        assert fetched.headers["content-disposition"].startswith("attachment;")
        path, query = _link_parts(link)
        async with sessions() as session:
            row = await session.get(MediaFile, uuid.UUID(file["id"]))
            assert row is not None
        expired = int(time.time()) - 1
        for changed in (
            {**query, "signature": "0" * 64},  # forged
            {**query, "expires": str(int(query["expires"]) + 60)},  # extended
            {"expires": str(expired), "signature": signature(row.signing_key, row.id, expired)},
        ):
            assert (await meta.get(api_url + path, params=changed)).status_code == 404
    assert evolution["media"] == base64.b64encode(PNG).decode()
    assert (evolution["mediatype"], evolution["mimetype"]) == ("image", "image/png")
    await _named_files_stay(tenant, file["id"], saved.json()["id"])


async def _named_files_stay(tenant: Tenant, media_id: str, canned_id: str) -> None:
    """The file the two messages and the canned response name: listed with them, not deleted
    (409 naming them), still not once the canned response is gone (the messages name it)."""
    [listed] = (await tenant.client.get("/api/v1/media")).json()["data"]
    assert listed["used_by"] == {
        "canned_responses": [{"id": canned_id, "shortcut": "kit"}], "messages": 2
    }  # fmt: skip
    refused = await tenant.client.delete(f"/api/v1/media/{media_id}")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "media_in_use" and "/kit" in error["message"]
    assert error["details"]["messages"] == 2
    assert (await tenant.client.delete(f"/api/v1/canned-responses/{canned_id}")).status_code == 204
    refused = await tenant.client.delete(f"/api/v1/media/{media_id}")
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["canned_responses"] == []


async def _agent(tenant: Tenant, api_url: str) -> httpx.AsyncClient:
    user = (await tenant.client.post(
        "/api/v1/users", json={"email": "a@example.com", "name": "Ana", "role": "agent"}
    )).json()  # fmt: skip
    key = await tenant.client.post(
        "/api/v1/api-keys", json={"name": "ana", "role": "agent", "user_id": user["id"]}
    )
    assert key.status_code == 201, key.text
    return httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {key.json()['key']}"}, timeout=10
    )


async def test_the_company_lists_its_files_and_deletes_what_nothing_names(
    tenant: Tenant, other_tenant: Tenant, api_url: str
) -> None:
    admins = (await upload(tenant.client, PDF, "a.pdf")).json()
    async with await _agent(tenant, api_url) as agent:
        own = (await upload(agent, PNG, "b.png")).json()
        await upload(other_tenant.client, PNG, "theirs.png")
        first = (await agent.get("/api/v1/media", params={"limit": 1})).json()
        assert [f["id"] for f in first["data"]] == [own["id"]] and first["has_more"]
        assert first["data"][0]["uploaded_by"]["name"] == "Ana"
        rest = await agent.get("/api/v1/media", params={"cursor": first["next_cursor"]})
        [older] = rest.json()["data"]
        assert older["id"] == admins["id"] and older["uploaded_by"] is None  # an API key's
        assert older["used_by"] == {"canned_responses": [], "messages": 0}
        images = (await agent.get("/api/v1/media", params={"kind": "image"})).json()["data"]
        assert [f["id"] for f in images] == [own["id"]]
        # an agent deletes its own file, not another's
        refused = await agent.delete(f"/api/v1/media/{admins['id']}")
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["details"]["permission"] == "media:manage"
        assert (await agent.delete(f"/api/v1/media/{own['id']}")).status_code == 204
        assert (await agent.get(f"/api/v1/media/{own['id']}/content")).status_code == 404
    assert (await other_tenant.client.delete(f"/api/v1/media/{admins['id']}")).status_code == 404
    assert (await tenant.client.delete(f"/api/v1/media/{admins['id']}")).status_code == 204
    assert (await tenant.client.get("/api/v1/media")).json()["data"] == []


async def test_retention_sweeps_old_files_nothing_names_a_batch_at_a_time(
    tenant: Tenant, sessions: SessionFactory, settings: Settings
) -> None:
    ids = [(await upload(tenant.client, PNG, f"{i}.png")).json()["id"] for i in range(4)]
    named = await tenant.client.post(
        "/api/v1/canned-responses",
        json={"shortcut": "old", "body": "x", "company_wide": True,
              "attachments": [{"media_id": ids[0], "kind": "image"}]},
    )  # fmt: skip
    assert named.status_code == 201, named.text
    old = [uuid.UUID(i) for i in ids[:3]]  # the last one is recent
    async with transaction(sessions) as session:
        await session.execute(
            update(MediaFile)
            .where(col(MediaFile.id).in_(old))
            .values(created_at=MediaFile.created_at - timedelta(days=31))
        )
    before = datetime.now(UTC) - timedelta(days=30)
    async with transaction(sessions) as session:
        assert await sweep_unused(session, before, 1) == 1  # the batch's bound
    assert await MediaActivities(sessions, settings).sweep_unused() == 1
    assert await MediaActivities(sessions, settings).sweep_unused() == 0
    listed = (await tenant.client.get("/api/v1/media")).json()["data"]
    assert sorted(f["id"] for f in listed) == sorted([ids[0], ids[3]])
