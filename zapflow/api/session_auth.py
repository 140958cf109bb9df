"""People's browser sessions on the API: the session cookie, its CSRF check, and the request's
``Principal`` when it carries no API key. Kept apart from the API-key path of ``get_principal``
(``api/deps.py``), which only asks this module when no ``Authorization`` header came."""

from __future__ import annotations

import hmac

from fastapi import Request, Response

from zapflow.api.state import AppState
from zapflow.config import Settings
from zapflow.errors import Forbidden
from zapflow.services.auth import Principal, hash_key
from zapflow.services.user_sessions import NewSession, csrf_token

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cookie_name(settings: Settings) -> str:
    # the __Host- prefix makes the browser refuse the cookie unless it is Secure, for this host
    # only, on path /: no subdomain or plain-http page can plant or shadow it
    return "__Host-zapflow_session" if settings.session_cookie_secure else "zapflow_session"


def session_token(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(cookie_name(settings))


def set_session_cookie(response: Response, settings: Settings, new: NewSession) -> None:
    response.set_cookie(
        cookie_name(settings),
        new.token,
        max_age=settings.session_days * 86_400,
        path="/",
        secure=settings.session_cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings),
        path="/",
        secure=settings.session_cookie_secure,
        httponly=True,
        samesite="strict",
    )


async def session_principal(request: Request, state: AppState) -> Principal | None:
    """The signed-in person, or None when the request has no session cookie. A state-changing
    request must echo the session's CSRF token in ``X-CSRF-Token`` (a page of another site
    cannot read it; SameSite=Strict already keeps the cookie off its requests)."""
    token = session_token(request, state.settings)
    if token is None:
        return None
    principal = await state.session_auth.principal(hash_key(token))
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
            raise Forbidden(
                f"missing or wrong {CSRF_HEADER} header: a signed-in page sends the token "
                "GET /api/v1/me gave it",
                code="csrf_failed",
            )
    return principal
