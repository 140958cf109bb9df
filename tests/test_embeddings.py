"""Embeddings: the local model (against sentence-transformers where installed), the skip rule,
the OpenAI-compatible provider against a fake server, every message embedded by the pipeline,
and the backfill workflow and command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
from sqlalchemy import delete
from temporalio.client import Client
from temporalio.worker import Worker

from tests.fixtures.app import Tenant
from tests.fixtures.embeddings import embeddings_by_body, send_texts, wait_embedded
from tests.fixtures.openai_server import OpenAIServer, fake_vector
from tests.fixtures.traffic import start_conversation
from zapflow.activities.embeddings import EmbeddingActivities
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.embeddings import embeddable_text
from zapflow.embeddings.local import MODEL_NAME, LocalEmbedder, packaged_model_dir
from zapflow.embeddings.openai import EmbeddingRejected, OpenAIEmbedder
from zapflow.models import ConversationEmbedding, Message
from zapflow.temporal import connect
from zapflow.workflows.embeddings import EmbeddingBackfillWorkflow
from zapflow.workflows.inputs import EmbeddingBackfillInput

SENTENCES = [
    "Hello, I would like to know the price of the blue shirt.",
    "Olá, qual é o preço da camisa azul?",
    "My order has not arrived yet and it has been two weeks",
    "Bom dia! Gostaria de remarcar minha consulta para sexta-feira.",
    "ok",
    "word " * 400,  # longer than the model's 256 tokens: truncated like the reference
]


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder()


def test_local_vectors_match_sentence_transformers(local: LocalEmbedder) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(packaged_model_dir()), device="cpu")
    expected = reference.encode(SENTENCES, normalize_embeddings=True)
    cosines = (local.encode(SENTENCES) * expected).sum(axis=1)
    assert cosines.min() >= 0.99, cosines


async def test_local_vectors_are_unit_length_and_batch_independent(local: LocalEmbedder) -> None:
    together = np.array(await local.embed(SENTENCES))
    alone = np.array([(await local.embed([s]))[0] for s in SENTENCES])
    assert together.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # padding to the batch's longest text must not change a text's vector
    assert np.allclose(together, alone, atol=1e-4)
    assert local.model == MODEL_NAME


@pytest.mark.parametrize(
    ("body", "media", "expected"),
    [
        ("ok", None, None),
        ("  sim  ", None, None),
        ("👍👍👍", None, None),
        ("kkkkk", None, None),
        (None, {"caption": None}, None),
        ("", None, None),
        ("boleto", None, "boleto"),
        ("  tudo bem?  ", None, "tudo bem?"),
        (None, {"caption": "foto do produto"}, "foto do produto"),
    ],
)
def test_short_texts_are_skipped(
    body: str | None, media: dict | None, expected: str | None
) -> None:  # type: ignore[type-arg]
    assert embeddable_text(body, media, min_chars=6) == expected


@pytest.fixture
async def openai_embedder(openai_server: OpenAIServer) -> AsyncIterator[OpenAIEmbedder]:
    embedder = OpenAIEmbedder(
        base_url=openai_server.base_url,
        model="text-embedding-3-small",
        api_key="sk-test",
        dimensions=384,
    )
    yield embedder
    await embedder.aclose()


async def test_openai_provider(
    openai_server: OpenAIServer, openai_embedder: OpenAIEmbedder
) -> None:
    vectors = await openai_embedder.embed(["first text", "second text"])
    assert vectors == [fake_vector("first text"), fake_vector("second text")]
    [request] = openai_server.requests_to("/embeddings")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json == {
        "model": "text-embedding-3-small",
        "input": ["first text", "second text"],
        "dimensions": 384,
        "encoding_format": "float",
    }


async def test_openai_provider_retries_429_and_5xx(
    openai_server: OpenAIServer, openai_embedder: OpenAIEmbedder
) -> None:
    openai_server.fail_next(1, status=429, retry_after=0)
    openai_server.fail_next(1, status=503)
    assert await openai_embedder.embed(["hello there"]) == [fake_vector("hello there")]
    assert [r.status for r in openai_server.requests] == [429, 503, 200]


async def test_openai_provider_does_not_retry_a_rejection(
    openai_server: OpenAIServer, openai_embedder: OpenAIEmbedder
) -> None:
    openai_server.fail_next(1, status=400)
    with pytest.raises(EmbeddingRejected, match="400"):
        await openai_embedder.embed(["hello there"])
    assert len(openai_server.requests) == 1


@pytest.mark.usefixtures("worker")
async def test_every_inbound_message_is_embedded(tenant: Tenant, sessions: SessionFactory) -> None:
    texts = ["Quero saber o prazo de entrega para Campinas", "ok", "Can I pay by bank transfer?"]
    _, conversation_id = await send_texts(tenant, texts)
    rows = await wait_embedded(sessions, tenant.id, lambda r: len(r) == 2)
    assert set(rows) == {texts[0], texts[2]}  # "ok" and the opening "oi" are too short
    row = rows[texts[0]]
    assert str(row.conversation_id) == conversation_id
    assert row.content_hash is not None and len(row.content_hash) == 64
    expected = (await LocalEmbedder().embed([texts[0]]))[0]
    assert np.dot(np.array(row.embedding), expected) > 0.999


@pytest.mark.usefixtures("worker")
async def test_agent_replies_are_embedded(tenant: Tenant, sessions: SessionFactory) -> None:
    _, conversation_id = await start_conversation(tenant, "55119" + uuid.uuid4().hex[:8])
    reply = "Your order ships tomorrow morning"
    response = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": reply}
    )
    assert response.status_code in (200, 201, 202), response.text
    rows = await wait_embedded(sessions, tenant.id, lambda r: reply in r)
    async with sessions() as session:
        message = await session.get(Message, rows[reply].message_id)
    assert message is not None and message.direction == "outbound"


async def _run_backfill(client: Client, task_queue: str, company_id: str) -> dict:  # type: ignore[type-arg]
    return await client.execute_workflow(
        EmbeddingBackfillWorkflow.run,
        EmbeddingBackfillInput(company_id, batch_size=2),
        id=f"test-backfill-{uuid.uuid4().hex}",
        task_queue=task_queue,
    )


async def forget_embeddings(sessions: SessionFactory, company_id: str) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            delete(ConversationEmbedding).where(
                ConversationEmbedding.company_id == uuid.UUID(company_id)
            )
        )


@pytest.mark.usefixtures("worker")
async def test_backfill_embeds_what_is_missing_and_a_new_model(
    tenant: Tenant,
    sessions: SessionFactory,
    settings: Settings,
    openai_server: OpenAIServer,
    openai_embedder: OpenAIEmbedder,
) -> None:
    texts = ["I need a second copy of my invoice", "Meu cartão foi recusado ontem", "ok"]
    await send_texts(tenant, texts)
    await wait_embedded(sessions, tenant.id, lambda r: len(r) == 2)
    await forget_embeddings(sessions, tenant.id)
    client = await connect(settings)
    # the session's worker (local model) serves the default queue
    result = await _run_backfill(client, settings.embeddings_task_queue, tenant.id)
    assert result == {"total": 4, "scanned": 4, "embedded": 2, "skipped": 2, "done": True}
    assert set(await embeddings_by_body(sessions, tenant.id)) == set(texts[:2])

    # a model change: a worker whose embedder is the OpenAI-compatible one, failing at first
    # (more than the client's own retries, so Temporal retries the activity)
    openai_server.fail_next(5, status=429, retry_after=0)
    queue = f"embeddings-openai-{uuid.uuid4().hex[:8]}"
    activities = EmbeddingActivities(sessions, openai_embedder, settings)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[EmbeddingBackfillWorkflow],
        activities=[activities.embed_batch, activities.count_unembedded],
    ):
        result = await _run_backfill(client, queue, tenant.id)
    assert result["embedded"] == 2
    rows = await embeddings_by_body(sessions, tenant.id, "text-embedding-3-small")
    assert {b: list(r.embedding) for b, r in rows.items()} == {
        t: pytest.approx(fake_vector(t), abs=1e-6) for t in texts[:2]
    }
    assert set(await embeddings_by_body(sessions, tenant.id)) == set(texts[:2])  # local rows stay


@pytest.mark.usefixtures("worker")
async def test_backfill_command(
    tenant: Tenant, sessions: SessionFactory, settings: Settings
) -> None:
    texts = ["Where can I download the app?"]
    await send_texts(tenant, texts)
    await wait_embedded(sessions, tenant.id, lambda r: len(r) == 1)
    await forget_embeddings(sessions, tenant.id)
    env = {
        **os.environ,
        "ZAPFLOW_DATABASE_URL": settings.database_url,
        "ZAPFLOW_TEMPORAL_ADDRESS": settings.temporal_address,
        "ZAPFLOW_EMBEDDINGS_TASK_QUEUE": settings.embeddings_task_queue,
    }
    command = [sys.executable, "-m", "zapflow.cli", "embeddings", "backfill"]
    done = await asyncio.to_thread(
        subprocess.run,
        [*command, "--company", tenant.id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "scanned 2, embedded 1, skipped 1" in done.stdout
    assert set(await embeddings_by_body(sessions, tenant.id)) == set(texts)
