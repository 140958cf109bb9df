"""The embedding queue and its embedder process, on a database of each test's own.

The trigger queues every message inserted (here as an import: no webhook, no workflow, no
Temporal worker); the embedder drains the queue in batches through the OpenAI-compatible
provider played by a loopback server, which records every model call. A SIGKILLed embedder
loses nothing and nothing is stored twice; a text the provider refuses is skipped with its
answer; a failing provider is retried a bounded number of times; the backlog is measured;
``zapflow embeddings backfill`` queues what a (new) model lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlmodel import col

from tests.fixtures.app import in_process_api
from tests.fixtures.embeddings import embeddings_by_body, import_messages
from tests.fixtures.openai_server import OpenAIServer, fake_vector
from tests.fixtures.stack import MakeDatabase
from tests.fixtures.traffic import eventually
from zapflow.config import Settings
from zapflow.db import SessionFactory, create_engine, session_factory, transaction
from zapflow.migrate import upgrade
from zapflow.models import ConversationEmbedding, EmbeddingQueueItem
from zapflow.services.auth import create_company
from zapflow.services.embeddings import MAX_ATTEMPTS, enqueue_missing
from zapflow.worker.embedder import run_embedder

MODEL = "text-embedding-3-small"
TEXTS = [f"Customer question number {i}: when does my order number {i} arrive?" for i in range(70)]


@dataclass
class QueueDb:
    settings: Settings
    sessions: SessionFactory


@pytest.fixture
async def queue_db(
    make_database: MakeDatabase, settings: Settings, openai_server: OpenAIServer
) -> AsyncIterator[QueueDb]:
    """A migrated database of the test's own, and settings for an embedder that uses the fake
    OpenAI API, with batches of 32 and short leases, retry delays and sweeps."""
    url = await make_database(f"zapflow_embq_{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(upgrade, url)
    own = settings.model_copy(
        update={
            "database_url": url,
            "embedding_provider": "openai",
            "openai_base_url": openai_server.base_url,
            "openai_api_key": "sk-test",
            "openai_embedding_model": MODEL,
            "embedding_batch_size": 32,
            "embedding_lease_seconds": 2.0,
            "embedding_retry_seconds": 0.2,
            "embedding_sweep_seconds": 0.2,
            "embedding_rate_limit_per_second": 1000.0,
        }
    )
    engine = create_engine(own, pool_size=2)
    yield QueueDb(own, session_factory(engine))
    await engine.dispose()


@asynccontextmanager
async def embedder(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """The embedder running in this test's loop until the block ends."""
    task = asyncio.create_task(run_embedder(settings))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def embedder_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """``zapflow worker --role embeddings`` as a process of its own."""
    env = {
        **os.environ,
        "ZAPFLOW_DATABASE_URL": settings.database_url,
        "ZAPFLOW_EMBEDDING_PROVIDER": "openai",
        "ZAPFLOW_OPENAI_BASE_URL": settings.openai_base_url,
        "ZAPFLOW_OPENAI_API_KEY": "sk-test",
        "ZAPFLOW_OPENAI_EMBEDDING_MODEL": settings.openai_embedding_model,
        "ZAPFLOW_EMBEDDING_BATCH_SIZE": str(settings.embedding_batch_size),
        "ZAPFLOW_EMBEDDING_LEASE_SECONDS": str(settings.embedding_lease_seconds),
        "ZAPFLOW_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "zapflow.cli", "worker", "--role", "embeddings"]
    process = subprocess.Popen(command, env=env)
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


async def queue_rows(sessions: SessionFactory) -> list[EmbeddingQueueItem]:
    async with sessions() as session:
        return list((await session.execute(select(EmbeddingQueueItem))).scalars())


def sent_texts(server: OpenAIServer) -> list[str]:
    """Every text sent to the model, in order, once per time it was sent."""
    return [t for r in server.requests_to("/embeddings") for t in r.json["input"]]  # type: ignore[index]


async def test_imported_messages_are_queued_and_embedded_in_batches(
    queue_db: QueueDb, openai_server: OpenAIServer
) -> None:
    company_id, ids = await import_messages(queue_db.sessions, [*TEXTS, "ok", None])  # type: ignore[list-item]
    queued = {str(row.message_id) for row in await queue_rows(queue_db.sessions)}
    assert queued == set(ids[:-1])  # the trigger: every message with a text, none without

    async with embedder(queue_db.settings):
        rows = await eventually(
            lambda: embeddings_by_body(queue_db.sessions, company_id, MODEL),
            lambda r: len(r) == len(TEXTS),
        )
        await eventually(lambda: queue_rows(queue_db.sessions), lambda r: r == [])
    assert {b: list(r.embedding) for b, r in rows.items()} == {
        t: pytest.approx(fake_vector(t), abs=1e-6) for t in TEXTS
    }
    assert sorted(sent_texts(openai_server)) == sorted(TEXTS)  # each once; "ok" never
    sizes = [len(r.json["input"]) for r in openai_server.requests_to("/embeddings")]  # type: ignore[index]
    assert sizes[0] == 32 and sum(sizes) == len(TEXTS)


async def test_a_killed_embedder_loses_nothing_and_stores_each_message_once(
    queue_db: QueueDb, openai_server: OpenAIServer
) -> None:
    texts = [f"Crash test message {i}: where is my parcel number {i}?" for i in range(140)]
    company_id, _ = await import_messages(queue_db.sessions, texts)
    openai_server.delay_next(1000, seconds=0.3)  # every model call takes a while

    async def state() -> tuple[dict[str | None, Any], int]:
        stored = await embeddings_by_body(queue_db.sessions, company_id, MODEL)
        async with queue_db.sessions() as session:
            leased = await session.scalar(
                select(func.count()).where(col(EmbeddingQueueItem.claimed_until) > func.now())
            )
        return stored, leased or 0

    with embedder_process(queue_db.settings) as process:
        # a batch stored, the next one in the model's hands
        await eventually(state, lambda s: len(s[0]) >= 32 and s[1] > 0, within=60)
        # it yields the cores to the messages' path (``embedder_nice``)
        niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + queue_db.settings.embedder_nice)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == niceness
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    stored_before, leased = await state()
    assert len(stored_before) < len(texts) and leased > 0  # killed mid-batch
    openai_server.reset()  # no more delays; from here on only the second embedder's calls

    async with embedder(queue_db.settings):  # it takes the dead one's batch when its lease ends
        await eventually(lambda: queue_rows(queue_db.sessions), lambda r: r == [], within=60)
    stored = await embeddings_by_body(queue_db.sessions, company_id, MODEL)
    assert set(stored) == set(texts)
    async with queue_db.sessions() as session:
        rows = await session.scalar(
            select(func.count()).where(
                col(ConversationEmbedding.company_id) == uuid.UUID(company_id)
            )
        )
    assert rows == len(texts)  # one vector per message, under one model
    # what was stored before the crash is not embedded again; the rest exactly once
    assert sorted(sent_texts(openai_server)) == sorted(set(texts) - set(stored_before))


async def test_a_text_the_provider_refuses_is_skipped_with_its_reason(
    queue_db: QueueDb, openai_server: OpenAIServer
) -> None:
    openai_server.max_input_chars = 1000
    too_long = "a very long message" * 100
    texts = [*TEXTS[:40], too_long]
    company_id, ids = await import_messages(queue_db.sessions, texts)

    async with embedder(queue_db.settings):
        rows = await eventually(
            lambda: queue_rows(queue_db.sessions), lambda r: all(x.skipped_reason for x in r)
        )
        stored = await embeddings_by_body(queue_db.sessions, company_id, MODEL)
    assert set(stored) == set(TEXTS[:40])
    [skipped] = rows
    assert str(skipped.message_id) == ids[-1] and skipped.attempts == 0
    assert skipped.skipped_reason is not None
    assert "400" in skipped.skipped_reason and "context length" in skipped.skipped_reason
    # found by halving the refused batch down to the long text alone
    calls = [(r.json["input"], r.status) for r in openai_server.requests_to("/embeddings")]  # type: ignore[index]
    assert ([too_long], 400) in calls
    assert all(status == 400 for texts, status in calls if too_long in texts)


async def test_a_repeated_text_goes_to_the_model_once(
    queue_db: QueueDb, openai_server: OpenAIServer
) -> None:
    """Within a batch, and in a later batch (the vectors embedded lately): every message gets
    its vector, the model sees each distinct text once; a refused text's repeats are skipped
    with its reason."""
    openai_server.max_input_chars = 1000
    question, too_long = TEXTS[0], "a very long message" * 100
    reused = REGISTRY.get_sample_value("zapflow_embedding_reused_total") or 0.0
    first, _ = await import_messages(
        queue_db.sessions, [question, TEXTS[1], question, too_long, too_long]
    )
    async with embedder(queue_db.settings):
        await eventually(
            lambda: queue_rows(queue_db.sessions), lambda r: all(x.skipped_reason for x in r)
        )
        later, _ = await import_messages(queue_db.sessions, [question, TEXTS[2]])
        await eventually(
            lambda: queue_rows(queue_db.sessions), lambda r: all(x.skipped_reason for x in r)
        )
    skipped = await queue_rows(queue_db.sessions)
    assert len(skipped) == 2 and all("context length" in (x.skipped_reason or "") for x in skipped)
    async with queue_db.sessions() as session:
        vectors = (
            await session.execute(
                select(ConversationEmbedding.company_id, ConversationEmbedding.embedding)
            )
        ).all()
    by_company = {c: [list(v) for k, v in vectors if str(k) == c] for c in (first, later)}
    assert len(by_company[first]) == 3 and len(by_company[later]) == 2
    expected = pytest.approx(fake_vector(question), abs=1e-6)
    assert sum(v == expected for v in [*by_company[first], *by_company[later]]) == 3
    calls = openai_server.requests_to("/embeddings")
    embedded = [t for r in calls if r.status == 200 for t in r.json["input"]]  # type: ignore[index]
    assert sorted(embedded) == sorted([question, TEXTS[1], TEXTS[2]])  # the refusal: halved
    # the batch's second question and long text, and the later batch's question
    assert REGISTRY.get_sample_value("zapflow_embedding_reused_total") == reused + 3


async def test_a_failing_provider_is_retried_a_bounded_number_of_times(
    queue_db: QueueDb, openai_server: OpenAIServer
) -> None:
    # one model call = the client's 4 tries; the first call fails, the queue retries it
    openai_server.fail_next(4, status=500, retry_after=0)
    company_id, _ = await import_messages(queue_db.sessions, TEXTS[:5])
    async with embedder(queue_db.settings):
        await eventually(lambda: queue_rows(queue_db.sessions), lambda r: r == [])
        assert set(await embeddings_by_body(queue_db.sessions, company_id, MODEL)) == set(TEXTS[:5])
        assert [r.status for r in openai_server.requests] == [500] * 4 + [200]

        # a provider that keeps failing: MAX_ATTEMPTS calls, then the messages are skipped
        openai_server.reset()
        openai_server.fail_next(1000, status=500, retry_after=0)
        await import_messages(queue_db.sessions, TEXTS[5:8])
        rows = await eventually(
            lambda: queue_rows(queue_db.sessions),
            lambda r: len(r) == 3 and all(x.skipped_reason for x in r),
            within=60,  # held back between attempts; seen again by the embedder's sweep
        )
    assert len(openai_server.requests) == MAX_ATTEMPTS * 4
    for row in rows:
        assert row.attempts == MAX_ATTEMPTS
        assert row.skipped_reason is not None
        assert row.skipped_reason.startswith(f"{MAX_ATTEMPTS} failed attempts")
        assert "500" in row.skipped_reason


async def test_a_vector_the_database_refuses_is_retried(
    queue_db: QueueDb, openai_server: OpenAIServer
) -> None:
    # float4 overflows: pgvector refuses the row, the store's transaction fails
    huge = {"data": [{"index": 0, "embedding": [1e39] * 384}]}
    openai_server.fail_next(1, status=200, body=huge)
    company_id, _ = await import_messages(queue_db.sessions, TEXTS[:1])
    async with embedder(queue_db.settings):
        await eventually(lambda: queue_rows(queue_db.sessions), lambda r: r == [])
    stored = await embeddings_by_body(queue_db.sessions, company_id, MODEL)
    assert list(stored[TEXTS[0]].embedding) == pytest.approx(fake_vector(TEXTS[0]), abs=1e-6)
    assert [r.status for r in openai_server.requests] == [200, 200]


async def backlog_gauge() -> float | None:
    return REGISTRY.get_sample_value("zapflow_embedding_backlog")


async def test_the_backlog_is_measured(queue_db: QueueDb, openai_server: OpenAIServer) -> None:
    await import_messages(queue_db.sessions, TEXTS[:10])
    async with transaction(queue_db.sessions) as session:
        _, key = await create_company(session, "Ops Co")
    async with in_process_api(queue_db.settings, key.plain) as (_, client):
        report = (await client.get("/api/v1/ops/queues")).json()
    [queue] = [q for q in report["queues"] if q["queue"] == "embedding_queue"]
    assert queue["backlog"] == 10 and queue["kind"] == "embedding_queue"

    openai_server.delay_next(1, seconds=3)  # the first batch waits on the model
    async with embedder(queue_db.settings):
        await eventually(backlog_gauge, lambda v: v == 10)
        await eventually(backlog_gauge, lambda v: v == 0, within=30)


async def test_backfill_queues_what_a_new_model_lacks(
    queue_db: QueueDb, openai_server: OpenAIServer
) -> None:
    company_id, _ = await import_messages(queue_db.sessions, [*TEXTS[:3], "ok"])
    async with embedder(queue_db.settings):
        await eventually(lambda: queue_rows(queue_db.sessions), lambda r: r == [])

    # a model change: the backfill command queues every message (the short one too, it
    # cannot know) and waits for the embedder of the new model
    new = queue_db.settings.model_copy(update={"openai_embedding_model": "text-embedding-3-large"})
    env = {
        **os.environ,
        "ZAPFLOW_DATABASE_URL": new.database_url,
        "ZAPFLOW_EMBEDDING_PROVIDER": "openai",
        "ZAPFLOW_OPENAI_EMBEDDING_MODEL": new.openai_embedding_model,
    }
    command = [sys.executable, "-m", "zapflow.cli", "embeddings", "backfill"]
    async with embedder(new):
        done = await asyncio.to_thread(
            subprocess.run, [*command, "--company", company_id], env=env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "queued 4: 3 embedded, 1 too short, 0 skipped" in done.stdout
    for model in (MODEL, new.openai_embedding_model):  # the old model's rows stay
        assert set(await embeddings_by_body(queue_db.sessions, company_id, model)) == set(TEXTS[:3])
    # running it again queues nothing embedded already
    async with transaction(queue_db.sessions) as session:
        again, _ = await enqueue_missing(session, new.openai_embedding_model, uuid.UUID(company_id))
    assert again == 1  # the short one only
