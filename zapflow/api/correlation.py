"""Gives every request a correlation id (the caller's ``X-Request-ID`` when it is sane), puts it
in the logging context and echoes it in the response, beside the security headers
(``api/headers.py``)."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zapflow.api.headers import security_headers
from zapflow.logs import CORRELATION_ID

HEADER = b"x-request-id"
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == HEADER:
            candidate = value.decode("latin-1")
            if SANE_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


class CorrelationMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = incoming_id(scope)
        token = CORRELATION_ID.set(correlation_id)
        extra = [(HEADER, correlation_id.encode()), *security_headers(scope["path"])]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *extra]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            CORRELATION_ID.reset(token)
