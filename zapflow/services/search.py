"""Search over a company's messages: by meaning (pgvector HNSW, cosine), by words (Postgres
full-text) or both fused by reciprocal rank; similar conversations; and the related earlier
messages of a contact (for the AI agent's context).

Every query filters by ``company_id`` in SQL. Full-text matches a message's words stemmed by
Postgres' ``portuguese`` configuration, as written and without accents (``portuguese_unaccent``,
made by a migration), stored in ``messages.body_tsv`` (GIN ``idx_messages_body_fts``); the query
is read both ways and either may match. Only the newest ``RANKED_MATCHES`` matches are ranked: a
frequent word matches a tenth of a large company's messages, and ranking them all took seconds.
As written, the stemmer meets a word's forms ("preços" finds "preço", "informações"
"informação"); without accents, a customer who types none ("promocao", "nao") still finds
"promoção" (Snowball's Portuguese stemmer, given unaccented words, no longer joins "-ção" and
"-ções"). English words go through the same stemmer on both sides, so a word
meets itself and its plural; other word forms are the semantic side's job.

After a change of embedding model, a company's search keeps using the previous model's vectors
until the new model's are complete (``search_embedder``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import ColumnElement, Select, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.embeddings import Embedder, Embedders
from zapflow.models import (
    BODY_TSVECTOR,
    EMBEDDING_DIMENSIONS,
    Contact,
    Conversation,
    ConversationEmbedding,
    Message,
    MessageDirection,
)
from zapflow.schemas.search import SearchMode

RRF_K = 60  # reciprocal-rank fusion's constant (Cormack et al. 2009): 1 / (60 + rank)
CANDIDATES = 50  # per side, before fusion
SIMILAR_NEIGHBOURS = 200  # messages near a conversation's centroid, grouped into conversations
# the text search configurations: Portuguese's stemmer on the words as written, and on the words
# without accents (made by a migration); see the module's docstring
TEXT_SEARCH = ("portuguese", "portuguese_unaccent")
# keyword search ranks the newest this many matches (of the company and filters), not all: the
# Postgres planner then walks the company's messages newest first until it has them (a frequent
# word), or reads the few matches from the GIN index and sorts them (a rare one)
RANKED_MATCHES = 1000
HEADLINE_OPTIONS = "MaxFragments=1, MaxWords=24, MinWords=8, StartSel=**, StopSel=**"
# a model's vectors are "complete" for a company once it has embedded this share of the messages
# the best-covered model has (not all: a few texts a provider refuses must not hold the switch)
COMPLETE_COVERAGE = 0.99
SEARCHED_MODEL_TTL_SECONDS = 60.0  # how long a company's choice of model is reused


@dataclass(frozen=True)
class SearchFilters:
    contact_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    direction: MessageDirection | None = None


@dataclass(frozen=True)
class SearchHit:
    message: Message
    conversation: Conversation
    contact: Contact
    snippet: str
    score: float  # the fused score in hybrid mode; else the one side's
    semantic_score: float | None  # cosine similarity
    keyword_score: float | None  # ts_rank_cd


@dataclass(frozen=True)
class SimilarConversation:
    conversation: Conversation
    contact: Contact
    score: float  # cosine similarity of its closest message to the conversation's centroid
    message: Message  # that message


@dataclass(frozen=True)
class RelatedMessage:
    id: uuid.UUID
    conversation_id: uuid.UUID
    direction: MessageDirection
    body: str | None
    created_at: datetime
    similarity: float


async def use_ef_search(session: AsyncSession, ef_search: int) -> None:
    """HNSW's candidate list for this transaction; iterative scans keep filtered queries (one
    company among many) from coming back short (pgvector ≥ 0.8). One statement: a round trip
    less before the query (each one a wait for a core on a busy machine)."""
    await session.execute(
        text(
            "SELECT set_config('hnsw.ef_search', :ef, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true)"
        ),
        {"ef": str(ef_search)},
    )


async def searched_model(session: AsyncSession, company_id: uuid.UUID, current: str) -> str:
    """The model whose vectors a company's search uses: ``current`` once its vectors are
    complete (see ``COMPLETE_COVERAGE``), or when no other model has more; until then, after a
    model change, the model that has embedded most of the company's messages."""
    counts: dict[str, int] = {
        model: count
        for model, count in await session.execute(
            select(col(ConversationEmbedding.model), func.count())
            .where(col(ConversationEmbedding.company_id) == company_id)
            .group_by(col(ConversationEmbedding.model))
        )
    }
    best = max(counts, key=lambda m: counts[m], default=current)
    return current if counts.get(current, 0) >= COMPLETE_COVERAGE * counts.get(best, 0) else best


async def search_embedder(
    session: AsyncSession, embedders: Embedders, company_id: uuid.UUID
) -> Embedder:
    """The embedder of the model a company's search uses (``searched_model``), decided at most
    once a minute per company and process (counting a large company's rows is not free)."""
    now = time.monotonic()
    decided = embedders.searched.get(company_id)
    if decided is None or now - decided[0] > SEARCHED_MODEL_TTL_SECONDS:
        decided = (now, await searched_model(session, company_id, embedders.current.model))
        embedders.searched[company_id] = decided
    # an older model this process cannot run (an API no longer configured): the current one
    return embedders.of(decided[1]) or embedders.current


def _filters(company_id: uuid.UUID, filters: SearchFilters) -> list[ColumnElement[bool]]:
    where = [col(Message.company_id) == company_id]
    if filters.conversation_id:
        where.append(col(Message.conversation_id) == filters.conversation_id)
    if filters.contact_id:
        where.append(col(Conversation.contact_id) == filters.contact_id)
    if filters.since:
        where.append(col(Message.created_at) >= filters.since)
    if filters.until:
        where.append(col(Message.created_at) < filters.until)
    if filters.direction:
        where.append(col(Message.direction) == filters.direction)
    return where


def nearest_query(
    company_id: uuid.UUID, model: str, vector: Sequence[float], limit: int
) -> Select[Any]:
    """The company's messages nearest to ``vector`` (cosine), nearest first: through the HNSW
    index, or, for a company with few rows, its rows sorted (the planner's choice)."""
    distance = col(ConversationEmbedding.embedding).cosine_distance(vector)  # type: ignore[attr-defined]
    return (
        select(col(ConversationEmbedding.message_id), distance.label("distance"))
        .join(Message, col(Message.id) == col(ConversationEmbedding.message_id))
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(
            col(ConversationEmbedding.company_id) == company_id,
            col(ConversationEmbedding.model) == model,
        )
        .order_by(distance)
        .limit(limit)
    )


async def semantic_ranking(
    session: AsyncSession,
    company_id: uuid.UUID,
    model: str,
    vector: Sequence[float],
    filters: SearchFilters,
    limit: int,
) -> list[tuple[uuid.UUID, float]]:
    """(message id, cosine similarity), best first."""
    query = nearest_query(company_id, model, vector, limit).where(*_filters(company_id, filters))
    rows = (await session.execute(query)).all()
    # relaxed_order may return near-ties slightly out of order
    return sorted(((r[0], 1.0 - float(r[1])) for r in rows), key=lambda r: -r[1])


def _tsquery(q: str) -> ColumnElement[Any]:
    """A web-search-style query ("a b", -c, or) matched as written or without accents."""
    first, second = (func.websearch_to_tsquery(literal_column(f"'{c}'"), q) for c in TEXT_SEARCH)
    return first.op("||")(second)


def keyword_query(company_id: uuid.UUID, q: str, filters: SearchFilters, limit: int) -> Select[Any]:
    """The ``limit`` best of the newest ``RANKED_MATCHES`` matches of a web-search-style query
    ("a b", -c, or): (message id, ts_rank_cd), best first, ties newest first."""
    tsquery = _tsquery(q)
    matches = select(col(Message.id), col(Message.created_at), BODY_TSVECTOR)
    if filters.contact_id:  # the only filter on the conversation; else a lookup per match read
        matches = matches.join(Conversation, col(Conversation.id) == col(Message.conversation_id))
    newest = (
        matches.where(BODY_TSVECTOR.op("@@")(tsquery), *_filters(company_id, filters))
        .order_by(col(Message.created_at).desc())
        .limit(RANKED_MATCHES)
        .subquery()
    )
    rank = func.ts_rank_cd(newest.c.body_tsv, tsquery)
    return (
        select(newest.c.id, rank.label("rank"))
        .order_by(rank.desc(), newest.c.created_at.desc())
        .limit(limit)
    )


async def keyword_ranking(
    session: AsyncSession,
    company_id: uuid.UUID,
    q: str,
    filters: SearchFilters,
    limit: int,
) -> list[tuple[uuid.UUID, float]]:
    """(message id, ts_rank_cd), best first (``keyword_query``)."""
    query = keyword_query(company_id, q, filters, limit)
    return [(r[0], float(r[1])) for r in (await session.execute(query)).all()]


def fuse(*rankings: list[tuple[uuid.UUID, float]]) -> list[tuple[uuid.UUID, float]]:
    """Reciprocal-rank fusion: each ranking adds 1 / (RRF_K + rank) to its ids' scores."""
    scores: dict[uuid.UUID, float] = {}
    for ranking in rankings:
        for rank, (message_id, _) in enumerate(ranking, start=1):
            scores[message_id] = scores.get(message_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


async def search_messages(
    session: AsyncSession,
    embedder: Embedder,
    company_id: uuid.UUID,
    q: str,
    *,
    mode: SearchMode = "hybrid",
    filters: SearchFilters | None = None,
    limit: int = 20,
    ef_search: int = 200,
) -> list[SearchHit]:
    filters = filters or SearchFilters()
    candidates = max(limit, CANDIDATES)
    semantic: list[tuple[uuid.UUID, float]] = []
    keyword: list[tuple[uuid.UUID, float]] = []
    if mode in ("semantic", "hybrid"):
        vector = await embedder.embed_query(q)
        await use_ef_search(session, ef_search)
        semantic = await semantic_ranking(
            session, company_id, embedder.model, vector, filters, candidates
        )
    if mode in ("keyword", "hybrid"):
        keyword = await keyword_ranking(session, company_id, q, filters, candidates)
    ranked = {"semantic": semantic, "keyword": keyword}.get(mode) or fuse(semantic, keyword)
    top = ranked[:limit]
    return await _hits(session, company_id, q, top, dict(semantic), dict(keyword))


async def _hits(
    session: AsyncSession,
    company_id: uuid.UUID,
    q: str,
    ranked: list[tuple[uuid.UUID, float]],
    semantic: dict[uuid.UUID, float],
    keyword: dict[uuid.UUID, float],
) -> list[SearchHit]:
    if not ranked:
        return []
    tsquery = _tsquery(q)
    snippet = func.ts_headline(
        literal_column(f"'{TEXT_SEARCH[1]}'"),
        func.coalesce(col(Message.body), col(Message.media)["caption"].astext, ""),
        tsquery,
        HEADLINE_OPTIONS,
    )
    query = (
        select(Message, Conversation, Contact, snippet)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .where(col(Message.company_id) == company_id, col(Message.id).in_([i for i, _ in ranked]))
    )
    rows = {row[0].id: row for row in (await session.execute(query)).all()}
    return [
        SearchHit(
            message=rows[i][0],
            conversation=rows[i][1],
            contact=rows[i][2],
            snippet=rows[i][3],
            score=score,
            semantic_score=semantic.get(i),
            keyword_score=keyword.get(i),
        )
        for i, score in ranked
        if i in rows
    ]


async def similar_conversations(
    session: AsyncSession,
    company_id: uuid.UUID,
    conversation_id: uuid.UUID,
    model: str,
    *,
    limit: int = 10,
    ef_search: int = 200,
) -> list[SimilarConversation]:
    """Other conversations of the company whose messages lie closest to this one's centroid
    (the mean of its message vectors), best first; none when it has no embedded message."""
    centroid = await session.scalar(
        select(
            func.avg(col(ConversationEmbedding.embedding), type_=Vector(EMBEDDING_DIMENSIONS))
        ).where(
            col(ConversationEmbedding.company_id) == company_id,
            col(ConversationEmbedding.conversation_id) == conversation_id,
            col(ConversationEmbedding.model) == model,
        )
    )
    if centroid is None:
        return []
    await use_ef_search(session, ef_search)
    neighbours = nearest_query(company_id, model, list(centroid), SIMILAR_NEIGHBOURS).where(
        col(ConversationEmbedding.conversation_id) != conversation_id
    )
    best: dict[uuid.UUID, tuple[uuid.UUID, float]] = {}
    for message_id, distance, other in await session.execute(
        neighbours.add_columns(col(Message.conversation_id))
    ):
        if other not in best:  # rows come nearest first
            best[other] = (message_id, 1.0 - float(distance))
    top = sorted(best.values(), key=lambda b: -b[1])[:limit]
    query = (
        select(Message, Conversation, Contact)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .where(col(Message.company_id) == company_id, col(Message.id).in_([m for m, _ in top]))
    )
    rows = {row[0].id: row for row in (await session.execute(query)).all()}
    return [
        SimilarConversation(rows[m][1], rows[m][2], score=s, message=rows[m][0])
        for m, s in top
        if m in rows
    ]


async def related_messages(
    session: AsyncSession,
    embedder: Embedder,
    company_id: uuid.UUID,
    contact_id: uuid.UUID,
    text_or_vector: str | Sequence[float],
    k: int = 5,
    exclude_ids: Sequence[uuid.UUID] = (),
    ef_search: int = 200,
) -> list[RelatedMessage]:
    """The ``k`` messages of this contact (any of its conversations) closest in meaning to a
    text or a vector from ``embedder``, except ``exclude_ids`` (say, the recent ones already in
    the context), most similar first."""
    if isinstance(text_or_vector, str):
        vector = await embedder.embed_query(text_or_vector)
    else:
        vector = list(text_or_vector)
    # should the planner walk the HNSW index, the contact filter must not leave it short
    await use_ef_search(session, ef_search)
    query = nearest_query(company_id, embedder.model, vector, k).where(
        col(ConversationEmbedding.contact_id) == contact_id
    )
    if exclude_ids:
        query = query.where(col(ConversationEmbedding.message_id).not_in(list(exclude_ids)))
    query = query.add_columns(
        col(Message.conversation_id),
        col(Message.direction),
        col(Message.body),
        col(Message.created_at),
    )
    rows = (await session.execute(query)).all()
    return sorted(
        (
            RelatedMessage(m_id, conv, direction, body, created, 1.0 - float(distance))
            for m_id, distance, conv, direction, body, created in rows
        ),
        key=lambda r: -r.similarity,
    )
