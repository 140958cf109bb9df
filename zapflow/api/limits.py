"""What a request may carry, checked before any route runs: a body over the limit is answered
413 before it is read whole, whoever sends it (FastAPI reads a route's body before it
authenticates the caller, so without a cap anyone could make the API buffer gigabytes); text
Postgres cannot store (NUL, an unpaired surrogate) in the path, the query or a JSON body is a 422
naming the field, not a failed query (flow documents: by their route, once the key is checked).
Webhooks, the CSV uploads (contacts import, campaign audiences) and media uploads read their
bodies themselves, under limits of their own, and store what a provider sends without its NULs."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from starlette.types import Message, Receive, Scope

from zapflow.api.validation import unstorable_error, unstorable_fields
from zapflow.errors import PayloadTooLarge

MAX_BODY_BYTES = 2 * 1024 * 1024  # a flow graph or a note is far below
# uploads are counted as they stream by their routes (api/uploads.py, api/routes/media_files.py)
OWN_LIMITS = (
    "/webhooks/",
    "/api/v1/contacts/import",
    "/api/v1/campaigns/audiences/csv",
    "/api/v1/media",
)
# flow documents are read, parsed and checked by their routes once the key is checked
READ_AFTER_AUTHENTICATION = re.compile(r"/api/v1/flows(/[^/]+)?")
BODY_HEADERS = frozenset({b"content-length", b"content-type", b"transfer-encoding"})
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


async def admit(
    scope: Scope, receive: Receive, headers: dict[bytes, bytes], max_bytes: int = MAX_BODY_BYTES
) -> Receive | None:
    """The request's ``receive`` once its target and body pass the checks (the body read whole
    and replayed), ``None`` when the client left while sending it; raises the 413 or 422.
    ``headers``: the request's ``BODY_HEADERS``."""
    fields = _unstorable_target(scope)
    if fields:
        raise unstorable_error(fields)
    length = headers.get(b"content-length")
    has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
    if not has_body or scope["path"].startswith(OWN_LIMITS):
        return receive
    too_large = PayloadTooLarge(f"the body is over {max_bytes} bytes")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size, more = 0, True
    while more:  # a body sent without its length (chunked) is counted as it comes
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > max_bytes:
            raise too_large
    body = b"".join(chunks)  # the one chunk itself, as a body usually comes
    document = READ_AFTER_AUTHENTICATION.fullmatch(scope["path"]) is not None
    fields = [] if document else _unstorable_body(headers.get(b"content-type"), body)
    if fields:
        raise unstorable_error(fields)
    whole: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return whole.pop() if whole else await receive()

    return replay
