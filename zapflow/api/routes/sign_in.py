"""Signing in to ``/app`` as a person: e-mail and password, or a one-time invite/reset link
(which sets the password). Outside ``/api/v1``: these routes are how a caller gets a credential,
so none can require one. Sign-in is throttled per account and client address instead; a link's
token is 256 random bits."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from zapflow.api.deps import SessionDep, StateDep
from zapflow.api.routes.me import me_of
from zapflow.api.session_auth import session_token, set_session_cookie
from zapflow.models import User
from zapflow.schemas.user_sessions import AcceptLink, Me, SignIn
from zapflow.services import user_sessions

router = APIRouter(prefix="/auth", tags=["sign-in"])


def _client(request: Request) -> user_sessions.Client:
    host = request.client.host if request.client else "unknown"
    return user_sessions.Client(ip=host, user_agent=request.headers.get("user-agent"))


async def start_person_session(
    request: Request, response: Response, state: StateDep, session: SessionDep, user: User
) -> Me:
    """A new session for ``user``, its cookie set on ``response`` (any way of signing in)."""
    new = await user_sessions.start_session(
        session,
        user,
        _client(request),
        timedelta(days=state.settings.session_days),
        replacing=session_token(request, state.settings),
    )
    set_session_cookie(response, state.settings, new)
    return me_of(user, new.row.id, new.csrf)


@router.post(
    "/sign-in",
    summary="Sign in with e-mail and password: sets the session cookie",
    response_model=Me,
    responses={
        401: {"description": "wrong e-mail or password"},
        409: {"description": "the e-mail signs in to several companies: send company_id"},
        429: {"description": "locked after too many failures (account), or the address is"},
    },
)
async def sign_in(
    body: SignIn, request: Request, response: Response, state: StateDep, session: SessionDep
) -> Me:
    user = await user_sessions.authenticate_person(
        session,
        state.sign_in_throttle,
        body.email,
        body.password,
        body.company_id,
        _client(request).ip,
    )
    return await start_person_session(request, response, state, session, user)


@router.post(
    "/accept",
    summary="Set a password with an invite or reset link, and sign in",
    response_model=Me,
    responses={401: {"description": "the link is unknown, spent or expired"}},
)
async def accept_link(
    body: AcceptLink, request: Request, response: Response, state: StateDep, session: SessionDep
) -> Me:
    user = await user_sessions.redeem_link(session, body.token, body.password)
    return await start_person_session(request, response, state, session, user)
