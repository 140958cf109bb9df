"""The one middleware every HTTP request passes: correlation id and security headers, the body
checks (``api/limits.py``), route metrics (``api/metrics.py``), ``RateLimit-*`` headers and gzip.

One pure ASGI layer with one ``send`` wrapper per request, instead of five layers each wrapping
``send`` in a closure of its own and copying the response start: py-spy put those five at ~8 % of
a cached read's samples. The request's headers are read in one pass; the response start is
copied once, with everything it gains.

gzip keeps Starlette's ``GZipMiddleware`` semantics: a body of at least ``GZIP_MINIMUM`` bytes
is compressed when the client accepts gzip (streamed bodies chunk by chunk), never an excluded
content type (event streams, images), a body already encoded or a partial one; a compressible
body that size says ``Vary: Accept-Encoding`` either way.
"""

from __future__ import annotations

import re
import time
import uuid

import anyio.to_thread
from isal import isal_zlib
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zapflow.api import limits, metrics
from zapflow.api.errors import error_response
from zapflow.api.headers import security_headers
from zapflow.api.ratelimit import STATE_KEY as RATE_LIMIT_STATE
from zapflow.errors import ZapflowError
from zapflow.logs import CORRELATION_ID

REQUEST_ID = b"x-request-id"
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
GZIP_MINIMUM = 1024
# ISA-L's deflate (isal) at its level 1: on a 190 KB funnel board 134 µs and 31.0 KB, where
# zlib's level 5 took 1,843 µs for 31.1 KB (bench/results/2026-12-02-s4-api/NOTES.md); gzip
# was a quarter of the board's API CPU and a tenth of an inbox page's
GZIP_LEVEL = 1
# a chunk this big (~0.7 ms of ISA-L) is compressed in a worker thread so it does not hold the
# loop; the hand-off costs more than compressing a page inline
GZIP_IN_THREAD = 1024 * 1024
NOT_COMPRESSED = frozenset(DEFAULT_EXCLUDED_CONTENT_TYPES)


def _incoming_id(value: bytes | None) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a new one."""
    if value is not None:
        candidate = value.decode("latin-1")
        if SANE_ID.match(candidate):
            return candidate
    return uuid.uuid4().hex


def _compressible(headers: list[tuple[bytes, bytes]], status: int) -> bool:
    if status == 206:
        return False
    media_type = b""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-encoding":
            return False
        if lowered == b"content-type":
            media_type = value
    kind = media_type.decode("latin-1").partition(";")[0].strip().lower()
    return kind not in NOT_COMPRESSED and f"{kind.partition('/')[0]}/*" not in NOT_COMPRESSED


def _rate_limit_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    """The limiter's headers, unless the response has them already (a 429 carries its own)."""
    outcome = scope.get("state", {}).get(RATE_LIMIT_STATE)
    if outcome is None:
        return
    present = {name.lower() for name, _ in headers}
    for name, value in outcome.headers().items():
        key = name.lower().encode()
        if key not in present:
            headers.append((key, value.encode()))


class Exchange:
    """One request's ``send``: notes the status, adds the headers, compresses the body."""

    __slots__ = ("compressor", "downstream", "extra", "gzip", "held", "scope", "status")

    def __init__(
        self, downstream: Send, scope: Scope, extra: list[tuple[bytes, bytes]], gzip: bool
    ) -> None:
        self.downstream = downstream
        self.scope = scope
        self.extra = extra
        self.gzip = gzip
        self.status = 500
        self.held: Message | None = None  # a start waiting for its first body
        self.compressor: isal_zlib.Compress | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            headers = [*message.get("headers", ()), *self.extra]
            _rate_limit_headers(self.scope, headers)
            message = {**message, "headers": headers}
            if _compressible(headers, self.status):
                self.held = message
                return
        elif self.held is not None:
            await self._first(message)
            return
        elif kind == "http.response.body" and self.compressor is not None:
            message = {**message, "body": await self._compress(message)}
        await self.downstream(message)

    async def _first(self, message: Message) -> None:
        """The first message after a compressible start: decides gzip for the response."""
        start, self.held = self.held, None
        assert start is not None
        body, more = message.get("body", b""), message.get("more_body", False)
        if message["type"] == "http.response.body" and (more or len(body) >= GZIP_MINIMUM):
            headers = [(n, v) for n, v in start["headers"] if n.lower() != b"vary"]
            vary = [v for n, v in start["headers"] if n.lower() == b"vary"]
            headers.append((b"vary", b", ".join([*vary, b"Accept-Encoding"])))
            if self.gzip:
                self.compressor = isal_zlib.compressobj(
                    GZIP_LEVEL, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS
                )
                body = await self._compress(message)
                headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
                headers.append((b"content-encoding", b"gzip"))
                if not more and not start.get("trailers", False):
                    headers.append((b"content-length", str(len(body)).encode()))
                message = {**message, "body": body}
            start = {**start, "headers": headers}
        await self.downstream(start)
        await self.downstream(message)

    async def _compress(self, message: Message) -> bytes:
        body, more = message.get("body", b""), message.get("more_body", False)
        if len(body) >= GZIP_IN_THREAD:
            return await anyio.to_thread.run_sync(self._deflate, body, more)
        return self._deflate(body, more)

    def _deflate(self, body: bytes, more: bool) -> bytes:
        assert self.compressor is not None
        compressed = self.compressor.compress(body)
        flush = isal_zlib.Z_SYNC_FLUSH if more else isal_zlib.Z_FINISH
        return compressed + self.compressor.flush(flush)


class ApiMiddleware:
    def __init__(
        self, app: ASGIApp, slow_request_ms: int = 500, max_body_bytes: int = limits.MAX_BODY_BYTES
    ) -> None:
        self.app = app
        self.metrics = metrics.RouteMetrics(slow_request_ms)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept = None
        body_headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name == REQUEST_ID:
                request_id = value
            elif name == b"accept-encoding":
                accept = value
            elif name in limits.BODY_HEADERS:
                body_headers[name] = value
        correlation_id = _incoming_id(request_id)
        token = CORRELATION_ID.set(correlation_id)
        extra = [(REQUEST_ID, correlation_id.encode()), *security_headers(scope["path"])]
        exchange = Exchange(send, scope, extra, accept is not None and b"gzip" in accept)
        try:
            try:
                checked = await limits.admit(scope, receive, body_headers, self.max_body_bytes)
            except ZapflowError as error:
                response = error_response(
                    error.status_code, error.code, error.message, error.details
                )
                await response(scope, receive, exchange.send)
                return
            if checked is not None:  # else the client left while sending its body
                await self._timed(scope, checked, exchange)
        finally:
            CORRELATION_ID.reset(token)

    async def _timed(self, scope: Scope, receive: Receive, exchange: Exchange) -> None:
        started = time.perf_counter()
        try:
            await self.app(scope, receive, exchange.send)
        except BaseException as exc:
            self.metrics.failed(scope, exc)
            raise
        finally:
            self.metrics.answered(scope, exchange.status, time.perf_counter() - started)
