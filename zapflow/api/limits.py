"""Caps request bodies: one over the limit is answered 413 before it is read whole, whoever sends
it (FastAPI reads a route's body before it authenticates the caller, so without a cap anyone
could make the API buffer gigabytes). Webhooks and the CSV import enforce limits of their own."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zapflow.api.errors import error_response

MAX_BODY_BYTES = 2 * 1024 * 1024  # a flow graph or a note is far below; a CSV goes to /import
OWN_LIMITS = ("/webhooks/", "/api/v1/contacts/import")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OWN_LIMITS):
            await self.app(scope, receive, send)
            return
        too_large = f"the body is over {self.max_bytes} bytes"
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = error_response(413, "payload_too_large", too_large)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:  # a body sent without its length (chunked)
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, too_large)
            return message

        await self.app(scope, counted, send)
