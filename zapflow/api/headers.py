"""Security headers on every response: a Content-Security-Policy that lets the inbox (``/app``)
load only its own scripts, styles and API, never be framed, and send no referrer; plus
``X-Frame-Options``, ``Referrer-Policy`` and ``X-Content-Type-Options`` for older browsers and
non-HTML answers. FastAPI's ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN with
inline scripts, so they only get the framing, referrer and sniffing headers.

Pure ASGI (headers appended to the response start), so it costs one call per response.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# inline styles: Mermaid's diagrams carry a <style> element (the scripts stay 'self' only)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
COMMON = [
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]
HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()), *COMMON]
DOCS_HEADERS = [(b"content-security-policy", b"frame-ancestors 'none'"), *COMMON]
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = DOCS_HEADERS if scope["path"] in DOCS_PATHS else HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
