"""Embeddings: the local model (against sentence-transformers where installed), the skip rule,
the OpenAI-compatible provider against a fake server, and every message the pipeline stores
embedded by the embedder (the queue itself: tests/test_embedding_queue.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest

from tests.fixtures.app import Tenant
from tests.fixtures.embeddings import send_texts, wait_embedded
from tests.fixtures.openai_server import OpenAIServer, fake_vector
from tests.fixtures.traffic import start_conversation
from zapflow.db import SessionFactory
from zapflow.embeddings import embeddable_text
from zapflow.embeddings.e5 import E5Embedder
from zapflow.embeddings.local import MODEL_NAME, LocalEmbedder, packaged_model_dir
from zapflow.embeddings.openai import EmbeddingRejected, OpenAIEmbedder
from zapflow.models import Message

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
    expected = (await E5Embedder().embed([texts[0]]))[0]  # the default model
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
