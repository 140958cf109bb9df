"""API keys: issue (the secret is shown once), list (never the secret) and revoke, admins only."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond
from zapflow.api.state import AppState
from zapflow.db import after_commit
from zapflow.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from zapflow.services import auth
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/api-keys", tags=["api keys"])


ApiKeyFields = Annotated[frozenset[str] | None, Depends(fields_param(ApiKeyPublic))]


def forget_keys(session: AsyncSession, state: AppState, key_hashes: Iterable[str]) -> None:
    """Makes every process stop honouring the keys once the change is committed (before the
    response): forgetting them earlier would let a concurrent request cache them anew."""
    hashes = list(key_hashes)

    async def forget() -> None:
        await state.authenticator.forget(hashes)

    after_commit(session, forget)


@router.get(
    "",
    summary="List the company's API keys, newest first (never their secrets)",
    response_model=CursorPage[ApiKeyPublic],
    dependencies=[Requires(Permission.API_KEYS_MANAGE)],
)
async def list_api_keys(
    principal: CurrentPrincipal,
    session: SessionDep,
    fields: ApiKeyFields,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    rows, next_cursor = await auth.page_api_keys(session, principal.company_id, limit, cursor)
    page = CursorPage[ApiKeyPublic].of(rows, next_cursor)
    return respond(page, fields)


@router.post(
    "",
    status_code=201,
    summary="Issue an API key (the response holds the secret, shown this once)",
    response_model=ApiKeyCreated,
    responses={
        404: {"description": "`user_id` names no user of this company"},
        422: {"description": "deactivated user, or an admin key for an agent"},
    },
    dependencies=[Requires(Permission.API_KEYS_MANAGE)],
)
async def create_api_key(
    body: ApiKeyCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> ApiKeyCreated:
    response.headers["Cache-Control"] = "no-store"  # the body holds a secret
    issued = await auth.issue_api_key(
        session, principal.company_id, body.name, body.role, body.user_id
    )
    public = ApiKeyPublic.model_validate(issued.row)
    return ApiKeyCreated(**public.model_dump(), key=issued.plain)


@router.delete(
    "/{key_id}",
    status_code=204,
    summary="Revoke an API key (it stops working at once)",
    responses={409: {"description": "the key making this request"}},
    dependencies=[Requires(Permission.API_KEYS_MANAGE)],
)
async def revoke_api_key(
    key_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
) -> Response:
    key = await auth.revoke_api_key(session, principal.company_id, key_id, principal)
    forget_keys(session, state, [key.key_hash])
    return Response(status_code=204)
