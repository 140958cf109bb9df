"""What a request may carry, checked before any route runs: a body over the limit is answered
413 before it is read whole, whoever sends it (FastAPI reads a route's body before it
authenticates the caller, so without a cap anyone could make the API buffer gigabytes); text
Postgres cannot store (NUL, an unpaired surrogate) in the path, the query or a JSON body is a 422
naming the field, not a failed query (flow documents: by their route, once the key is checked).
Webhooks and the CSV import read their bodies themselves, under limits of their own, and store
what a provider sends without its NULs."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zapflow.api.errors import error_response
from zapflow.api.validation import unstorable_error, unstorable_fields
from zapflow.errors import PayloadTooLarge, ZapflowError

MAX_BODY_BYTES = 2 * 1024 * 1024  # a flow graph or a note is far below; a CSV goes to /import
OWN_LIMITS = ("/webhooks/", "/api/v1/contacts/import")
# flow documents are read, parsed and checked by their routes once the key is checked
READ_AFTER_AUTHENTICATION = re.compile(r"/api/v1/flows(/[^/]+)?")
_READ_HEADERS = frozenset({b"content-length", b"content-type", b"transfer-encoding"})
# A JSON body can only carry such text escaped (a raw NUL byte is invalid JSON). The body is
# decoded and searched only when one of these occurs, after a one-byte search for a backslash,
# so most bodies cost a memchr.
_SUSPECT_ESCAPES = (b"\\u0000", b"\\ud", b"\\uD")


def _unstorable_target(scope: Scope) -> list[str]:
    """The path and query parameters holding a NUL (the rest is decoded with replacement)."""
    found = ["path"] if "\x00" in scope["path"] else []
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        found += [f"query.{name}" for name, value in pairs if "\x00" in name + value]
    return found


def _unstorable_body(content_type: bytes | None, body: bytes) -> list[str]:
    if content_type is not None and b"json" not in content_type.lower():
        return []  # FastAPI reads only JSON bodies as JSON; the YAML route checks its own
    if b"\\" not in body or not any(escape in body for escape in _SUSPECT_ESCAPES):
        return []
    try:
        document = json.loads(body)  # as FastAPI reads it
    except ValueError:
        return []  # FastAPI answers 422 for a body that is not JSON
    return unstorable_fields(document, "body")


async def _answer(error: ZapflowError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(error.status_code, error.code, error.message, error.details)
    await response(scope, receive, send)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = _unstorable_target(scope)
        if fields:
            await _answer(unstorable_error(fields), scope, receive, send)
            return
        headers = {name: value for name, value in scope["headers"] if name in _READ_HEADERS}
        length = headers.get(b"content-length")
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        if not has_body or scope["path"].startswith(OWN_LIMITS):
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"the body is over {self.max_bytes} bytes")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _answer(too_large, scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:  # a body sent without its length (chunked) is counted as it comes
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await _answer(too_large, scope, receive, send)
                return
        body = b"".join(chunks)  # the one chunk itself, as a body usually comes
        document = READ_AFTER_AUTHENTICATION.fullmatch(scope["path"]) is not None
        fields = [] if document else _unstorable_body(headers.get(b"content-type"), body)
        if fields:
            await _answer(unstorable_error(fields), scope, receive, send)
            return
        whole: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)
