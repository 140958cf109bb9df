"""The API's one middleware (api/middleware.py) on a small Starlette app: gzip as Starlette's
GZipMiddleware did it (threshold, Vary, streamed bodies, excluded types, bodies already encoded),
the correlation id and security headers on every answer, its own 413 included, and route metrics
by template. The same middleware on the real API: test_security, test_logs, test_limits,
test_foundation."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import httpx
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from zapflow.api.middleware import GZIP_MINIMUM, ApiMiddleware

BIG = "x" * GZIP_MINIMUM
DEFLATED = zlib.compress(BIG.encode())
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


async def _chunks() -> AsyncIterator[bytes]:
    for index in range(3):
        yield f"line {index} {BIG}\n".encode()


async def _echo(request: Request) -> Response:
    return PlainTextResponse(f"{len(await request.body())} bytes")


ROUTES = [
    Route("/small", lambda _: PlainTextResponse("short")),
    Route("/big", lambda _: PlainTextResponse(BIG, headers={"Vary": "Origin"})),
    Route("/stream", lambda _: StreamingResponse(_chunks(), media_type="text/plain")),
    Route("/events", lambda _: StreamingResponse(_chunks(), media_type="text/event-stream")),
    Route("/encoded", lambda _: Response(DEFLATED, headers={"Content-Encoding": "deflate"})),
    Route("/items/{item_id}", _echo, methods=["POST"]),
]  # fmt: skip


def _client() -> httpx.AsyncClient:
    app = Starlette(routes=ROUTES)
    app.add_middleware(ApiMiddleware, max_body_bytes=100)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_bodies_from_one_kib_are_gzipped_when_the_client_accepts_it() -> None:
    async with _client() as client:
        big = await client.get("/big", headers=GZIP)
        plain = await client.get("/big", headers={"Accept-Encoding": "identity"})
        small = await client.get("/small", headers=GZIP)
    assert big.headers["content-encoding"] == "gzip" and big.text == BIG
    assert int(big.headers["content-length"]) < GZIP_MINIMUM
    assert big.headers["vary"] == "Origin, Accept-Encoding"
    assert "content-encoding" not in plain.headers and plain.text == BIG
    assert plain.headers["vary"] == "Origin, Accept-Encoding"
    assert "content-encoding" not in small.headers and "vary" not in small.headers


async def test_streams_are_gzipped_chunk_by_chunk_but_not_events_or_encoded_bodies() -> None:
    async with _client() as client:
        async with client.stream("GET", "/stream", headers=GZIP) as streamed:
            raw = b"".join([chunk async for chunk in streamed.aiter_raw()])
        events = await client.get("/events", headers=GZIP)
        encoded = await client.get("/encoded", headers=GZIP)
    assert streamed.headers["content-encoding"] == "gzip"
    assert "content-length" not in streamed.headers
    assert gzip.decompress(raw).decode().count(BIG) == 3
    assert "content-encoding" not in events.headers and events.text.count(BIG) == 3
    assert encoded.headers["content-encoding"] == "deflate"
    assert encoded.text == BIG  # httpx undid the one deflate: nothing was added


async def test_every_answer_carries_the_correlation_id_and_security_headers() -> None:
    async with _client() as client:
        kept = await client.get("/small", headers={"X-Request-ID": "caller-id.1"})
        replaced = await client.get("/small", headers={"X-Request-ID": "not sane!"})
        too_large = await client.post("/items/1", content=b"{" * 101, headers={"X-Request-ID": "t"})
        accepted = await client.post("/items/1", content=b"{" * 100)
    assert kept.headers["x-request-id"] == "caller-id.1"
    assert len(replaced.headers["x-request-id"]) == 32
    assert too_large.status_code == 413, too_large.text
    assert too_large.json()["error"]["code"] == "payload_too_large"
    assert too_large.headers["x-request-id"] == "t"
    assert accepted.text == "100 bytes"
    for answer in (kept, replaced, too_large, accepted):
        assert answer.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" in answer.headers


async def test_requests_are_counted_by_route_template() -> None:
    def answered(status: str) -> float:
        labels = {"method": "POST", "path_template": "/items/{item_id}", "status_code": status}
        return REGISTRY.get_sample_value("starlette_responses_total", labels) or 0.0

    before = answered("200")
    async with _client() as client:
        for item in range(3):
            assert (await client.post(f"/items/{item}", content=b"{}")).status_code == 200
    assert answered("200") - before == 3
