"""Search: semantic (the e5 model, English and Portuguese), keyword, hybrid, filters, similar
conversations, tenant isolation, bad parameters, and the HNSW index in the plan."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.embeddings import embeddings_by_body, send_texts, wait_embedded
from zapflow.db import SessionFactory
from zapflow.embeddings.e5 import MODEL_NAMES, E5Embedder
from zapflow.services.search import nearest_query, related_messages, use_ef_search

pytestmark = pytest.mark.usefixtures("worker")

ENGLISH = [
    "My package still has not arrived, it was supposed to be delivered last week",
    "Can I pay with a credit card?",
    "What time does the store open on Saturday?",
    "I want to cancel my subscription",
]
PORTUGUESE = [
    "Meu pedido ainda não chegou, era para ter sido entregue semana passada",
    "Vocês aceitam pagamento no cartão de crédito?",
    "Qual o horário de funcionamento no sábado?",
    "Quero cancelar minha assinatura",
    "Pode me mandar o boleto atualizado?",
]


async def stored(tenant: Tenant, sessions: SessionFactory, texts: list[str]) -> str:
    """The customer's texts stored and embedded; returns the conversation id."""
    _, conversation_id = await send_texts(tenant, texts)
    await wait_embedded(sessions, tenant.id, lambda rows: set(texts) <= set(rows))
    return conversation_id


async def search(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = await tenant.client.get("/api/v1/search", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_semantic_search_ranks_a_paraphrase_first_in_english_and_portuguese(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    await stored(tenant, sessions, ENGLISH + PORTUGUESE)
    # no query shares more than a word or two with its target
    cases = {
        "where is my order? the delivery is late": ENGLISH[0],
        "do you accept visa or mastercard": ENGLISH[1],
        "opening hours this weekend": ENGLISH[2],
        "meu pedido não chegou ainda": PORTUGUESE[0],
        "vocês abrem sábado que horas?": PORTUGUESE[2],
        "cancelar assinatura": PORTUGUESE[3],
    }
    for query, expected in cases.items():
        hits = await search(tenant, q=query, mode="semantic")
        assert hits[0]["message"]["body"] == expected, (query, [h["message"]["body"] for h in hits])
        assert hits[0]["semantic_score"] > hits[1]["semantic_score"]
        assert hits[0]["keyword_score"] is None


async def test_keyword_and_hybrid_search(tenant: Tenant, sessions: SessionFactory) -> None:
    conversation_id = await stored(tenant, sessions, PORTUGUESE)
    hits = await search(tenant, q="boleto", mode="keyword")
    assert [h["message"]["body"] for h in hits] == [PORTUGUESE[4]]
    hit = hits[0]
    assert hit["snippet"] == "Pode me mandar o **boleto** atualizado"  # ts_headline's cut
    assert hit["semantic_score"] is None and hit["keyword_score"] > 0
    assert hit["conversation"]["id"] == conversation_id
    assert hit["contact"]["id"] and hit["contact"]["phone_number"]
    # websearch syntax: a quoted phrase, and a word excluded
    phrase = await search(tenant, q='"cartão de crédito" -boleto', mode="keyword")
    assert [h["message"]["body"] for h in phrase] == [PORTUGUESE[1]]
    assert await search(tenant, q="crédito -cartão", mode="keyword") == []

    # hybrid (the default): the keyword hit first (both sides rank it), semantic hits after it
    response = await tenant.client.get("/api/v1/search", params={"q": "boleto"})
    body = response.json()
    assert body["mode"] == "hybrid" and body["model"] == MODEL_NAMES["enpt"]
    fused = body["data"]
    assert fused[0]["message"]["body"] == PORTUGUESE[4]
    assert fused[0]["keyword_score"] > 0 and fused[0]["semantic_score"] is not None
    assert len(fused) == len(PORTUGUESE)  # the semantic side brings the others
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(fused))


async def test_filters(tenant: Tenant, sessions: SessionFactory) -> None:
    first = await stored(tenant, sessions, [ENGLISH[0]])
    second = await stored(tenant, sessions, [ENGLISH[1]])
    reply = "Your package ships tomorrow morning"
    response = await tenant.client.post(
        f"/api/v1/conversations/{first}/messages", json={"text": reply}
    )
    assert response.status_code < 300, response.text
    await wait_embedded(sessions, tenant.id, lambda r: reply in r)

    def bodies(hits: list[dict[str, Any]]) -> set[str]:
        return {h["message"]["body"] for h in hits}

    assert bodies(await search(tenant, q="package", direction="outbound")) == {reply}
    assert bodies(await search(tenant, q="package", direction="inbound")) == set(ENGLISH[:2])
    assert bodies(await search(tenant, q="package", conversation_id=second)) == {ENGLISH[1]}
    contact = (await search(tenant, q="card", conversation_id=second))[0]["contact"]["id"]
    assert bodies(await search(tenant, q="package", contact_id=contact)) == {ENGLISH[1]}
    now = datetime.now(UTC)
    later = {"from": (now + timedelta(hours=1)).isoformat()}
    assert await search(tenant, q="package", **later) == []
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()}
    assert bodies(await search(tenant, q="package", mode="keyword", **window)) == {
        ENGLISH[0],
        reply,
    }


async def test_similar_conversations(tenant: Tenant, sessions: SessionFactory) -> None:
    late = await stored(tenant, sessions, [ENGLISH[0], "The tracking code shows no update"])
    also_late = await stored(tenant, sessions, ["My delivery is two weeks late, where is it?"])
    await stored(tenant, sessions, [ENGLISH[1], "Do you accept bank transfer too?"])
    response = await tenant.client.get(f"/api/v1/conversations/{late}/similar")
    assert response.status_code == 200, response.text
    similar = response.json()["data"]
    assert similar[0]["conversation"]["id"] == also_late
    assert late not in [s["conversation"]["id"] for s in similar]
    assert similar[0]["score"] > similar[1]["score"]
    # a conversation with nothing embedded yet has no neighbours
    _, quiet = await send_texts(tenant, [])
    assert (await tenant.client.get(f"/api/v1/conversations/{quiet}/similar")).json()["data"] == []


async def test_related_messages_of_a_contact(tenant: Tenant, sessions: SessionFactory) -> None:
    conversation_id = await stored(tenant, sessions, ENGLISH)
    await stored(tenant, sessions, ["My package is lost, it never arrived"])  # another contact
    rows = await embeddings_by_body(sessions, tenant.id)
    contact_id = rows[ENGLISH[0]].contact_id
    async with sessions() as session:
        related = await related_messages(
            session,
            E5Embedder(),
            uuid.UUID(tenant.id),
            contact_id,
            "the parcel has not been delivered",
            k=2,
            exclude_ids=[rows[ENGLISH[3]].message_id],
        )
    assert related[0].body == ENGLISH[0]
    assert len(related) == 2 and ENGLISH[3] not in [r.body for r in related]
    assert all(str(r.conversation_id) == conversation_id for r in related)
    assert related[0].similarity > related[1].similarity


async def test_another_company_is_never_seen(
    tenant: Tenant, other_tenant: Tenant, sessions: SessionFactory
) -> None:
    mine = await stored(tenant, sessions, [ENGLISH[0]])
    theirs = await stored(other_tenant, sessions, [ENGLISH[0], ENGLISH[2]])
    for mode in ("semantic", "keyword", "hybrid"):
        hits = await search(tenant, q="package delivered", mode=mode)
        assert {h["conversation"]["id"] for h in hits} == {mine}, mode
        assert await search(tenant, q="package", mode=mode, conversation_id=theirs) == []
    response = await tenant.client.get(f"/api/v1/conversations/{theirs}/similar")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    similar = (await tenant.client.get(f"/api/v1/conversations/{mine}/similar")).json()["data"]
    assert similar == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "query.q"),
        ({"q": ""}, "query.q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 501}, "query.q"),
        ({"q": "hello", "mode": "fuzzy"}, "query.mode"),
        ({"q": "hello", "limit": 0}, "query.limit"),
        ({"q": "hello", "limit": 51}, "query.limit"),
        ({"q": "hello", "direction": "sideways"}, "query.direction"),
        ({"q": "hello", "contact_id": "not-a-uuid"}, "query.contact_id"),
        ({"q": "hello", "from": "2026-01-01T00:00:00"}, "query.from"),  # no time zone
        ({"q": "hello", "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
    ],
)
async def test_bad_parameters_are_422(tenant: Tenant, params: dict[str, Any], field: str) -> None:
    response = await tenant.client.get("/api/v1/search", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"] or field in str(error["details"])


async def test_similar_bad_id_and_limit(tenant: Tenant) -> None:
    response = await tenant.client.get("/api/v1/conversations/nope/similar")
    assert response.status_code == 422
    response = await tenant.client.get(f"/api/v1/conversations/{uuid.uuid4()}/similar")
    assert response.status_code == 404
    response = await tenant.client.get(f"/api/v1/conversations/{uuid.uuid4()}/similar?limit=0")
    assert response.status_code == 422


async def test_semantic_query_uses_the_hnsw_index(tenant: Tenant, sessions: SessionFactory) -> None:
    """The plan of the semantic query. For a company with a handful of rows Postgres rightly
    reads them through the company index and sorts them (exact, and cheaper); once sorting the
    company's rows costs more than an ordered index scan (a big company: the 100k-row run of
    bench/embeddings_search.py shows it unforced), the plan is the HNSW index. Sorts are made
    expensive here to stand in for that size."""
    await stored(tenant, sessions, ENGLISH)
    vector = await E5Embedder().embed_query("late delivery")
    query = nearest_query(uuid.UUID(tenant.id), MODEL_NAMES["enpt"], vector, 10)
    compiled = query.compile()
    # a vector goes to EXPLAIN as pgvector's text form ("[0.1, ...]", as Python prints a list)
    params = {k: str(v) if isinstance(v, list) else v for k, v in compiled.params.items()}
    async with sessions() as session, session.begin():
        await use_ef_search(session, 100)
        await session.execute(text("SET LOCAL enable_sort = off"))
        rows = await session.execute(text(f"EXPLAIN {compiled}"), params)
        plan = "\n".join(r[0] for r in rows)
        ef = await session.scalar(text("SHOW hnsw.ef_search"))
    assert "idx_embeddings_vector" in plan, plan
    assert ef == "100"
