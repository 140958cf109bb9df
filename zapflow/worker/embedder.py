"""The embedder process (``zapflow worker --role embeddings``): drains the embedding queue.

Off the conversation path: a trigger queues each message as it is inserted
(``services/embeddings.py``); this process claims the oldest pending rows in batches of
``embedding_batch_size`` with a lease, embeds their texts in one model call, and stores the
vectors and takes the rows off the queue in one transaction. So a crash loses nothing (its
leases expire and another pass takes the rows over) and a message is stored once (the rows
leave the queue in the transaction that stores their vectors).

- Woken by the trigger's NOTIFY, and by a sweep (every ``embedding_sweep_seconds``, for rows
  due again); after a wake-up it waits ``LINGER_SECONDS``
  so that a trickle of messages still makes batches (≥ 32 texts per call at 32 msg/s).
- ``embedding_worker_concurrency`` model calls at once, at most
  ``embedding_rate_limit_per_second`` calls started per second (the provider's limit).
- A text the provider refuses is found by halving the batch, and skipped with the provider's
  answer as its reason; a failed call (5xx, 429, timeout) is retried later, with doubling
  delays, and after ``MAX_ATTEMPTS`` its messages are skipped with the last error.
- Texts too short to mean anything (``embeddable_text``) leave the queue without a vector.
- A text repeated in a batch goes to the model once, and one embedded lately
  (``embedding_recent_vectors``, ``embeddings/recent.py``) not at all: its vector is reused.
- ``zapflow_embedding_backlog`` (Prometheus, on ``embedder_metrics_port``) and a progress log
  line every ``PROGRESS_SECONDS`` while there is work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from datetime import timedelta

import httpx
from prometheus_client import Counter as PrometheusCounter
from prometheus_client import Gauge, start_http_server
from sqlalchemy.exc import DataError, IntegrityError

from zapflow.config import Settings
from zapflow.db import SessionFactory, create_engine, listen_forever, session_factory, transaction
from zapflow.embeddings import Embedder, create_embedder, embeddable_text
from zapflow.embeddings.local import packaged_model_dir
from zapflow.embeddings.openai import EmbeddingRejected, EmbeddingUnavailable
from zapflow.embeddings.recent import RecentVectors
from zapflow.services.embeddings import (
    QUEUE_CHANNEL,
    PendingMessage,
    claim,
    embedding_backlog,
    finish,
    release,
    retry_later,
    skip,
    store_embeddings,
)

log = logging.getLogger(__name__)

LINGER_SECONDS = 1.0
PROGRESS_SECONDS = 30.0
BACKLOG_REFRESH_SECONDS = 5.0

BACKLOG = Gauge("zapflow_embedding_backlog", "Messages waiting on the embedding queue")
OLDEST_AGE = Gauge(
    "zapflow_embedding_oldest_age_seconds", "Age of the oldest message waiting for its embedding"
)
REUSED = PrometheusCounter(
    "zapflow_embedding_reused",
    "Messages not sent to the model: their text repeated in the batch, or embedded lately",
)
OUTCOMES = PrometheusCounter(
    "zapflow_embedding_messages", "Messages taken off the embedding queue, by outcome", ["outcome"]
)
# outcomes: embedded, too_short (no vector: embeddable_text), skipped (cannot be embedded, kept
# with its reason), retried (a failed model call, claimed again later)


class EmbeddingWorker:
    def __init__(self, settings: Settings, sessions: SessionFactory, embedder: Embedder) -> None:
        self._settings = settings
        self._sessions = sessions
        self._embedder = embedder
        self._batch_size = settings.embedding_batch_size
        self._min_chars = settings.embedding_min_chars
        self._recent = RecentVectors(settings.embedding_recent_vectors)
        self._lease = timedelta(seconds=settings.embedding_lease_seconds)
        self._retry = timedelta(seconds=settings.embedding_retry_seconds)
        self._sweep = settings.embedding_sweep_seconds
        self._slots = asyncio.Semaphore(settings.embedding_worker_concurrency)
        self._call_interval = 1.0 / settings.embedding_rate_limit_per_second
        self._next_call = 0.0
        self._pace_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._batches: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        helpers = [
            asyncio.create_task(listen_forever(self._settings, QUEUE_CHANNEL, self._wake)),
            asyncio.create_task(self._report()),
        ]
        try:
            await self._drain_forever()
        finally:
            # each batch cut off hands its rows back (a crash leaves them to the lease)
            for task in [*helpers, *self._batches]:
                task.cancel()
            await asyncio.gather(*helpers, *self._batches, return_exceptions=True)

    async def _drain_forever(self) -> None:
        while True:
            await self._slots.acquire()
            self._wake.clear()  # a NOTIFY from now on is for rows this claim may not see
            try:
                batch = await self._claim()
            except Exception:
                self._slots.release()
                log.exception("claiming from the embedding queue failed; retrying")
                await asyncio.sleep(self._sweep)
                continue
            if batch:
                task = asyncio.create_task(self._embed_batch(batch))
                self._batches.add(task)
                task.add_done_callback(self._batch_done)
            else:
                self._slots.release()
            if len(batch) < self._batch_size:  # the queue is drained: wait for more
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._sweep)
                await asyncio.sleep(LINGER_SECONDS)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("embedding batch failed: %s", exc, exc_info=exc)

    async def _claim(self) -> list[PendingMessage]:
        async with transaction(self._sessions) as session:
            return await claim(session, self._batch_size, self._lease)

    async def _embed_batch(self, batch: list[PendingMessage]) -> None:
        texts, too_short = [], []
        for message in batch:
            text = embeddable_text(message.body, message.media, self._min_chars)
            if text:
                texts.append((message, text))
            else:
                too_short.append(message.id)
        embedded: list[tuple[PendingMessage, str, list[float]]] = []
        refused: list[tuple[PendingMessage, str]] = []
        failed: list[uuid.UUID] = []
        failure = ""
        try:
            await self._embed_new(texts, embedded, refused)
        except asyncio.CancelledError:  # stopping: hand the batch back for the next embedder
            async with transaction(self._sessions) as session:
                await release(session, [m.id for m in batch])
            raise
        except Exception as exc:  # the provider failing, or anything unforeseen: bounded retries
            done = {m.id for m, _, _ in embedded} | {m.id for m, _ in refused}
            failed = [m.id for m, _ in texts if m.id not in done]
            failure = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, EmbeddingUnavailable | EmbeddingRejected | httpx.HTTPError):
                log.warning("embedding %d messages failed, retried later: %s", len(failed), exc)
            else:
                log.exception("embedding %d messages failed, retried later", len(failed))
        try:
            async with transaction(self._sessions) as session:
                await store_embeddings(session, self._embedder.model, embedded)
                await finish(session, [m.id for m, _, _ in embedded] + too_short)
                for message, reason in refused:
                    await skip(session, message.id, reason)
                if failed:
                    await retry_later(session, failed, failure, self._retry)
        except (DataError, IntegrityError) as exc:
            # the database refused what was stored (a vector it cannot take): bounded, as a
            # failed model call; the database being away raises, and the lease brings it back
            log.exception("storing %d embeddings failed, retried later", len(embedded))
            failed = [m.id for m, _, _ in embedded] + failed
            async with transaction(self._sessions) as session:
                await retry_later(session, failed, f"{type(exc).__name__}: {exc}", self._retry)
            embedded = []
        for _, text, vector in embedded:  # stored: a vector the database refused is not kept
            self._recent.put(text, vector)
        self._count(embedded=len(embedded), too_short=len(too_short))
        self._count(skipped=len(refused), retried=len(failed))

    async def _embed_new(
        self,
        texts: list[tuple[PendingMessage, str]],
        embedded: list[tuple[PendingMessage, str, list[float]]],
        refused: list[tuple[PendingMessage, str]],
    ) -> None:
        """``_embed`` for each distinct text not embedded lately; the other messages take the
        vector (or the refusal) of their text."""
        first: dict[str, PendingMessage] = {}
        again: list[tuple[PendingMessage, str]] = []
        for message, text in texts:
            vector = self._recent.get(text)
            if vector is not None:
                embedded.append((message, text, vector))
            elif text in first:
                again.append((message, text))
            else:
                first[text] = message
        REUSED.inc(len(texts) - len(first))
        done = len(embedded)
        await self._embed([(m, t) for t, m in first.items()], embedded, refused)
        vectors = {text: vector for _, text, vector in embedded[done:]}
        reasons = {first_message.id: reason for first_message, reason in refused}
        for message, text in again:
            if text in vectors:
                embedded.append((message, text, vectors[text]))
            else:
                refused.append((message, reasons[first[text].id]))

    async def _embed(
        self,
        texts: list[tuple[PendingMessage, str]],
        embedded: list[tuple[PendingMessage, str, list[float]]],
        refused: list[tuple[PendingMessage, str]],
    ) -> None:
        """Embed ``texts``; when the provider refuses the batch for its inputs, halve it until
        the texts it refuses are alone, and record those with its answer."""
        if not texts:
            return
        await self._pace()
        try:
            vectors = await self._embedder.embed([t for _, t in texts])
        except EmbeddingRejected as exc:
            if not exc.blames_input:
                raise
            if len(texts) == 1:
                refused.append((texts[0][0], f"the provider refused the text: {exc}"))
                return
            half = len(texts) // 2
            await self._embed(texts[:half], embedded, refused)
            await self._embed(texts[half:], embedded, refused)
            return
        embedded.extend((m, t, v) for (m, t), v in zip(texts, vectors, strict=True))

    async def _pace(self) -> None:
        """At most ``embedding_rate_limit_per_second`` model calls start per second."""
        async with self._pace_lock:
            now = time.monotonic()
            if self._next_call > now:
                await asyncio.sleep(self._next_call - now)
            self._next_call = max(now, self._next_call) + self._call_interval

    def _count(self, **outcomes: int) -> None:
        for outcome, n in outcomes.items():
            if n:
                self.counts[outcome] += n
                OUTCOMES.labels(outcome).inc(n)

    async def _report(self) -> None:
        """Refresh the backlog gauges; log progress while there is work."""
        reported: Counter[str] = Counter()
        last_log = time.monotonic()
        while True:
            try:
                backlog = await embedding_backlog(self._sessions)
            except Exception as exc:  # the database being down must not end the loop
                log.debug("embedding backlog refresh failed: %s", exc)
            else:
                BACKLOG.set(backlog.pending)
                OLDEST_AGE.set(backlog.oldest_age_seconds)
                if time.monotonic() - last_log >= PROGRESS_SECONDS:
                    done = self.counts - reported
                    if done or backlog.pending:
                        log.info(
                            "embeddings: %d embedded, %d too short, %d skipped, %d retried in "
                            "%.0f s; backlog %d (oldest %.0f s)",
                            done["embedded"], done["too_short"], done["skipped"], done["retried"],
                            time.monotonic() - last_log, backlog.pending,
                            backlog.oldest_age_seconds,
                        )  # fmt: skip
                    reported, last_log = self.counts.copy(), time.monotonic()
            await asyncio.sleep(BACKLOG_REFRESH_SECONDS)


async def run_embedder(settings: Settings) -> None:
    """The embedder process's main: its own pool, model and metrics endpoint."""
    if settings.embedder_metrics_port:
        start_http_server(settings.embedder_metrics_port)
    if settings.embedding_provider == "local":
        packaged_model_dir()  # ModelNotInstalled, with how to install it, before any claim
    engine = create_engine(settings, pool_size=settings.embedding_worker_concurrency + 2)
    embedder = create_embedder(settings)
    log.info(
        "embedder started: model %s, batches of %d, %d at once",
        embedder.model, settings.embedding_batch_size, settings.embedding_worker_concurrency,
    )  # fmt: skip
    try:
        await EmbeddingWorker(settings, session_factory(engine), embedder).run()
    finally:
        await embedder.aclose()
        await engine.dispose()
