"""Search over the company's conversation history: ``GET /search`` (semantic, keyword or hybrid)
and ``GET /conversations/{id}/similar``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, SettingsDep, StateDep
from zapflow.embeddings import Embedder
from zapflow.embeddings.local import ModelNotInstalled
from zapflow.embeddings.openai import EmbeddingRejected, EmbeddingUnavailable
from zapflow.errors import ServiceUnavailable, Unprocessable
from zapflow.models import MessageDirection
from zapflow.schemas.contacts import ContactRef
from zapflow.schemas.messages import MessagePublic
from zapflow.schemas.search import (
    ConversationRef,
    SearchMode,
    SearchResult,
    SearchResults,
    SimilarConversationOut,
    SimilarConversations,
)
from zapflow.services import queries
from zapflow.services.permissions import Permission
from zapflow.services.search import (
    SearchFilters,
    search_embedder,
    search_messages,
    similar_conversations,
)

router = APIRouter(tags=["search"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such conversation in your company"}
}


async def get_embedder(
    state: StateDep, session: SessionDep, principal: CurrentPrincipal
) -> Embedder:
    """The embedder of the model the company's search uses (the previous model's while a new
    one's re-embed is incomplete)."""
    return await search_embedder(session, state.embedders, principal.company_id)


EmbedderDep = Annotated[Embedder, Depends(get_embedder)]


async def search_filters(
    contact_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    since: Annotated[
        AwareDatetime | None, Query(alias="from", description="Messages at or after")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to", description="Messages before")] = None,
    direction: MessageDirection | None = None,
) -> SearchFilters:
    if since and until and until <= since:
        raise Unprocessable("'to' must be later than 'from'", details={"from": since, "to": until})
    return SearchFilters(contact_id, conversation_id, since, until, direction)


@router.get(
    "/search", response_model=SearchResults, dependencies=[Requires(Permission.CONVERSATIONS_READ)]
)
async def search(
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    state: StateDep,
    filters: Annotated[SearchFilters, Depends(search_filters)],
    q: Annotated[str, Query(min_length=1, max_length=500, description="What to look for")],
    mode: SearchMode = "hybrid",
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> SearchResults:
    """Messages by meaning (pgvector), by words (full-text, web-search syntax: "exact phrase",
    -exclude, or) or both fused by reciprocal rank (the default), newest-insensitive."""
    if not q.strip():
        raise Unprocessable("q: must not be blank", details={"q": q})
    # keyword search reads no vector: it skips the choice of model (a count of the company's
    # vectors per model, once a minute per process, which a large company pays for)
    embedder = (
        state.embedders.current
        if mode == "keyword"
        else await search_embedder(session, state.embedders, principal.company_id)
    )
    try:
        hits = await search_messages(
            session,
            embedder,
            principal.company_id,
            q,
            mode=mode,
            filters=filters,
            limit=limit,
            ef_search=settings.search_ef_search,
        )
    except (EmbeddingUnavailable, EmbeddingRejected, ModelNotInstalled) as exc:
        raise ServiceUnavailable(
            f"semantic search is unavailable ({exc}); mode=keyword still works"
        ) from exc
    return SearchResults(
        data=[
            SearchResult(
                message=MessagePublic.model_validate(h.message),
                conversation=ConversationRef.model_validate(h.conversation, from_attributes=True),
                contact=ContactRef.model_validate(h.contact),
                snippet=h.snippet,
                score=h.score,
                semantic_score=h.semantic_score,
                keyword_score=h.keyword_score,
            )
            for h in hits
        ],
        mode=mode,
        model=None if mode == "keyword" else embedder.model,
    )


@router.get(
    "/conversations/{conversation_id}/similar",
    response_model=SimilarConversations,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONVERSATIONS_READ)],
)
async def similar(
    conversation_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    embedder: EmbedderDep,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SimilarConversations:
    """Other conversations whose messages are closest in meaning to this one's (the mean of its
    message embeddings); empty while it has none."""
    await queries.get_conversation(session, principal.company_id, conversation_id)
    found = await similar_conversations(
        session,
        principal.company_id,
        conversation_id,
        embedder.model,
        limit=limit,
        ef_search=settings.search_ef_search,
    )
    return SimilarConversations(
        data=[
            SimilarConversationOut(
                conversation=ConversationRef.model_validate(s.conversation, from_attributes=True),
                contact=ContactRef.model_validate(s.contact),
                score=s.score,
                message=MessagePublic.model_validate(s.message),
            )
            for s in found
        ],
        model=embedder.model,
    )
