"""Signing in to ``/app`` with the operator's OpenID Connect provider (``services/oidc.py``):
the sign-in page asks ``/auth/options`` whether one is configured; its button opens
``/auth/oidc/start``, which sends the browser to the provider; the provider sends it back to
``/auth/oidc/callback``, which sets the session cookie and returns to ``/app/`` (a failure:
``/app/?sso_error=<code>``, the reason in the log). Outside ``/api/v1`` like the other sign-in
routes: they hand out the credential."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from zapflow.api.deps import SessionDep, StateDep
from zapflow.api.routes.sign_in import start_person_session
from zapflow.errors import NotFound
from zapflow.schemas.user_sessions import SignInOptions, SignInProvider
from zapflow.services.oidc import OidcClient, OidcError, user_of

router = APIRouter(prefix="/auth", tags=["sign-in"])
log = logging.getLogger(__name__)


def _cookie(state: StateDep) -> str:
    # the flow's state, bound to the browser that started it; SameSite=Lax, not Strict: the
    # provider's redirect back is a navigation another site starts
    return "__Host-zapflow_oidc" if state.settings.session_cookie_secure else "zapflow_oidc"


def _client(state: StateDep) -> OidcClient:
    if state.oidc is None:
        raise NotFound("no OpenID Connect provider is configured")
    return state.oidc


def _callback_url(request: Request, state: StateDep) -> str:
    base = state.settings.public_url or str(request.base_url)
    return base.rstrip("/") + "/auth/oidc/callback"


@router.get("/options", summary="How people may sign in here", response_model=SignInOptions)
async def sign_in_options(state: StateDep) -> SignInOptions:
    oidc = state.oidc
    provider = SignInProvider(name=oidc.name, start="/auth/oidc/start") if oidc else None
    return SignInOptions(oidc=provider)


@router.get(
    "/oidc/start",
    summary="Sign in with the OpenID Connect provider: redirects the browser to it",
    status_code=302,
    responses={302: {"description": "to the provider"}, 404: {"description": "none configured"}},
)
async def oidc_start(
    request: Request,
    state: StateDep,
    company_id: uuid.UUID | None = Query(
        None, description="Only when the e-mail signs in to several companies"
    ),
) -> Response:
    client = _client(state)
    try:
        url, flow_state = await client.begin(_callback_url(request, state), company_id)
    except OidcError as exc:
        log.warning("OIDC sign-in cannot start: %s", exc.reason)
        return RedirectResponse(f"/app/?sso_error={exc.code}", status_code=303)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        _cookie(state), flow_state, max_age=600, path="/",
        secure=state.settings.session_cookie_secure, httponly=True, samesite="lax",
    )  # fmt: skip
    return response


@router.get(
    "/oidc/callback",
    summary="The provider's redirect back: signs the person in and returns to /app",
    status_code=303,
    responses={303: {"description": "to /app/, or /app/?sso_error=<code>"}},
)
async def oidc_callback(
    request: Request,
    state: StateDep,
    session: SessionDep,
    code: str | None = Query(None, max_length=4096),
    flow_state: str | None = Query(None, alias="state", max_length=512),
    error: str | None = Query(None, max_length=256),
) -> Response:
    client = _client(state)
    response = RedirectResponse("/app/", status_code=303)
    try:
        if error or not code or not flow_state:
            raise OidcError("refused", f"the provider answered {error or 'without a code'}")
        identity = await client.finish(flow_state, request.cookies.get(_cookie(state)), code)
        user = await user_of(session, identity)
    except OidcError as exc:
        log.warning("OIDC sign-in refused (%s): %s", exc.code, exc.reason)
        response = RedirectResponse(f"/app/?sso_error={exc.code}", status_code=303)
    else:
        await start_person_session(request, response, state, session, user)
    response.delete_cookie(
        _cookie(state), path="/", secure=state.settings.session_cookie_secure, httponly=True,
        samesite="lax",
    )  # fmt: skip
    return response
