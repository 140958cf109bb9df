"""Security headers on every response: a Content-Security-Policy that lets the inbox (``/app``)
load only its own scripts, styles and API, never be framed, and send no referrer; plus
``X-Frame-Options``, ``Referrer-Policy`` and ``X-Content-Type-Options`` for older browsers and
non-HTML answers. FastAPI's ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN with
inline scripts, so they only get the framing, referrer and sniffing headers.

``api/middleware.py`` appends them to every response start, beside the correlation id.
"""

from __future__ import annotations

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


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    return DOCS_HEADERS if path in DOCS_PATHS else HEADERS
