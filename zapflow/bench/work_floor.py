"""The same-work floor of the pipeline scenario (variant ``floor-work``): per message, the work
zapflow does with a message that sets off nothing (no flow, AI answer or follow-up: no
Temporal), written as barely as it goes (raw Starlette, asyncpg, redis.asyncio; no SQLAlchemy,
no pydantic), to tell zapflow's framework overhead from the work itself. Bench-only, never a
production path. Three processes, as zapflow runs its roles:

- ``web``: the webhook (HMAC check, minimal JSON parse, one statement that INSERTs the
  deliveries into the inbox table and NOTIFYs, before the 200) and the live stream
  (``/api/v1/stream``: the company's Redis stream as ``text/event-stream``, in zapflow's format).
- ``worker``: the relay. Woken by the NOTIFY (or a 1 s sweep), at most once per
  ``relay_pass_interval_ms`` as zapflow's relay (under load a pass takes what arrived
  meanwhile), a pass takes the pending rows (SKIP LOCKED) in one transaction that, per
  conversation, upserts the contact and the conversation, inserts the messages (a stored key id
  is skipped), bumps the conversation, queues the messages for embedding and stages the events
  in the outbox, and marks the rows processed; after the commit the events go to the Redis
  stream and leave the outbox.
- ``embeddings``: zapflow's default model (``E5Embedder``) over the queue, a batch of
  ``embedding_batch_size`` per call, leased with SKIP LOCKED, vectors stored, rows taken off.

Its tables are zapflow's, copied (``bench_floor_<table>``, ``LIKE ... INCLUDING ALL``: same
columns, indexes, checks; no foreign keys, no triggers), so zapflow's relay, outbox publisher
and embedder never see its rows. What it leaves out (zapflow's own work beyond the message):
flow routing, follow-up cancel, opt-out keywords, SLAs, AI decisions, identities and merges,
API-key lookup, rate limits, logs and metrics, the relay's leases (a pass holds its rows' locks
until its commit) and the Temporal signals of messages that need their workflow.

    python -m zapflow.bench.work_floor web PORT COMPANY_ID INSTANCE_ID APP_SECRET API_KEY
    python -m zapflow.bench.work_floor worker|embeddings COMPANY_ID INSTANCE_ID
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from zapflow.bench.api_floor import serve
from zapflow.config import load_settings

PREFIX = "bench_floor_"
TABLES = ("inbox_events", "contacts", "conversations", "messages", "event_outbox",
          "embedding_queue", "conversation_embeddings")  # fmt: skip
STREAM_MAXLEN = 10_000
LINGER_SECONDS = 1.0  # an embedder pass that found less than a batch waits, as zapflow's does
CHANNEL = "bench_floor_inbox"
BATCH_SIZE = 500  # rows per relay pass, as zapflow's
SWEEP_SECONDS = 1.0


def stream_key(company_id: str) -> str:
    return f"bench-floor:events:{company_id}"


def dsn() -> str:
    return load_settings().database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_tables(db: asyncpg.Connection) -> None:
    for table in TABLES:
        await db.execute(f"CREATE TABLE IF NOT EXISTS {PREFIX}{table} (LIKE {table} INCLUDING ALL)")


# --- web: the webhook and the live stream --------------------------------------------------------

INSERT_INBOX = f"""WITH stored AS (INSERT INTO {PREFIX}inbox_events (company_id, instance_id,
  provider, event_type, dedupe_key, payload, status, received_at, attempts, conversation_key)
SELECT $1, $2, 'cloud', 'message', k, p::jsonb, 'pending', now(), 0, c
FROM unnest($3::text[], $4::text[], $5::text[]) AS d(k, p, c)
ON CONFLICT (instance_id, dedupe_key) DO NOTHING RETURNING id)
SELECT pg_notify('{CHANNEL}', '') FROM stored LIMIT 1"""


def inbound(raw: bytes) -> list[dict[str, Any]]:
    """The messages of a Cloud API delivery, each with its sender's profile name."""
    found = []
    for entry in orjson.loads(raw)["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            names = {c["wa_id"]: c.get("profile", {}).get("name", "") for c in
                     value.get("contacts", [])}  # fmt: skip
            found += [{**m, "name": names.get(m["from"], "")} for m in value.get("messages", [])]
    return found


def create_app(company_id: str, instance_id: str, app_secret: str, api_key: str) -> Starlette:
    held: dict[str, Any] = {}
    secret = app_secret.encode()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        settings = load_settings()
        held["db"] = await asyncpg.create_pool(dsn(), min_size=2, max_size=20)
        async with held["db"].acquire() as db:
            await create_tables(db)
        held["redis"] = Redis.from_url(settings.redis_url)
        yield
        await held["db"].close()
        await held["redis"].aclose()

    async def webhook(request: Request) -> Response:
        raw = await request.body()
        signature = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-hub-signature-256", ""), signature):
            return Response(b'{"error":"unauthorized"}', 401, media_type="application/json")
        try:
            messages = inbound(raw)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return Response(b'{"error":"malformed_payload"}', 400, media_type="application/json")
        await held["db"].execute(
            INSERT_INBOX, uuid.UUID(company_id), uuid.UUID(instance_id),
            [m["id"] for m in messages], [orjson.dumps(m).decode() for m in messages],
            [m["from"] for m in messages],
        )  # fmt: skip
        return Response(b'{"ok":true}', media_type="application/json")

    async def stream(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {api_key}".encode()):
            return Response(b'{"error":"unauthorized"}', 401, media_type="application/json")
        return StreamingResponse(events(held["redis"], company_id), media_type="text/event-stream")

    async def ready(_: Request) -> Response:
        return Response(b"{}", 200 if "redis" in held else 503, media_type="application/json")

    routes = [
        Route("/webhooks/cloud/{token}", webhook, methods=["POST"]),
        Route("/api/v1/stream", stream),
        Route("/readyz", ready),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def events(redis: Redis, company_id: str) -> AsyncIterator[bytes]:
    """The company's events from now on, as zapflow's stream sends them (``: live`` once
    subscribed, then ``id``/``event``/``data`` per event)."""
    key, last = stream_key(company_id), "$"
    yield b": live\n\n"
    while True:
        found: Any = await redis.xread({key: last}, block=5000)
        if not found:
            yield b": ping\n\n"
            continue
        for entry_id, fields in found[0][1]:
            last = entry_id.decode()
            yield b"id: %s\nevent: %s\ndata: %s\n\n" % (entry_id, fields[b"event"],
                                                       fields[b"payload"])  # fmt: skip


# --- worker: the relay and its persist -----------------------------------------------------------

CLAIM_ROWS = f"""SELECT id, conversation_key, payload::text FROM {PREFIX}inbox_events
WHERE status = 'pending' ORDER BY id LIMIT {BATCH_SIZE} FOR UPDATE SKIP LOCKED"""
UPSERT_CONTACT = f"""INSERT INTO {PREFIX}contacts (id, company_id, phone_number, name, wa_id, tags,
  custom_fields, created_at, updated_at)
VALUES (gen_random_uuid(), $1, $2, $3, $4, '{{}}', '{{}}', now(), now())
ON CONFLICT (company_id, phone_number) DO UPDATE SET updated_at = now() RETURNING id"""
UPSERT_CONVERSATION = f"""INSERT INTO {PREFIX}conversations (id, company_id, instance_id,
  contact_id, remote_jid, status, is_paused, priority, last_message_at, unread_count,
  message_count, workflow_id, created_at, updated_at)
VALUES (gen_random_uuid(), $1, $2, $3, $4, 'open', false, 'normal', now(), 0, 0, $5, now(), now())
ON CONFLICT (instance_id, remote_jid) DO UPDATE SET updated_at = now() RETURNING id"""
INSERT_MESSAGES = f"""INSERT INTO {PREFIX}messages (id, company_id, conversation_id, instance_id,
  message_key_id, direction, from_me, type, body, payload, provider_timestamp, status, sent_by,
  created_at)
SELECT gen_random_uuid(), $1, $2, $3, k, 'inbound', false, 'text', b, p::jsonb, to_timestamp(t),
  'received', 'customer', now()
FROM unnest($4::text[], $5::text[], $6::text[], $7::float8[]) AS m(k, b, p, t)
ON CONFLICT (instance_id, message_key_id) DO NOTHING
RETURNING id, message_key_id, body, provider_timestamp, created_at"""
BUMP = f"""UPDATE {PREFIX}conversations SET message_count = message_count + $2,
  unread_count = unread_count + $2, last_message_at = now(), last_inbound_at = now(),
  last_message_preview = left($3, 200), updated_at = now()
WHERE id = $1 RETURNING id, contact_id, status, unread_count, message_count,
  last_message_preview, last_message_at"""
QUEUE = f"""INSERT INTO {PREFIX}embedding_queue (message_id, company_id, enqueued_at, attempts)
SELECT unnest($2::uuid[]), $1, now(), 0"""
STAGE = f"""INSERT INTO {PREFIX}event_outbox (company_id, event_type, payload, created_at)
SELECT $1, t, p::jsonb, now() FROM unnest($2::text[], $3::text[]) AS e(t, p) RETURNING id"""
PROCESSED = f"""UPDATE {PREFIX}inbox_events SET status = 'processed', processed_at = now()
WHERE id = ANY($1::bigint[])"""


def jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def event(kind: str, conversation_id: uuid.UUID, data: dict[str, Any]) -> str:
    at = datetime.now(UTC)
    body = {"type": kind, "conversation_id": conversation_id, "at": at, "data": data}
    return orjson.dumps(body, default=jsonable).decode()


class Persister:
    """The relay: a pass's pending rows stored in one transaction, conversation by conversation."""

    def __init__(self, pool: asyncpg.Pool, redis: Redis, company_id: str, instance_id: str):
        self.pool, self.redis = pool, redis
        self.company, self.instance = uuid.UUID(company_id), uuid.UUID(instance_id)

    async def relay_once(self) -> int:
        """One pass; how many rows it took."""
        async with self.pool.acquire() as db:
            async with db.transaction():
                rows = await db.fetch(CLAIM_ROWS)
                chats: dict[str, list[dict[str, Any]]] = {}
                for row in rows:
                    message = orjson.loads(row["payload"])
                    chats.setdefault(row["conversation_key"], []).append(message)
                staged = [await self.store(db, found) for found in chats.values()]
                await db.execute(PROCESSED, [row["id"] for row in rows])
            outbox = [i for ids, _ in staged for i in ids]
            if outbox:  # after the commit: to the stream, then out of the outbox
                async with self.redis.pipeline(transaction=False) as pipe:
                    key = stream_key(str(self.company))
                    for _, payloads in staged:
                        for kind, payload in payloads:
                            fields = {"event": kind, "payload": payload}
                            pipe.xadd(key, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
                    await pipe.execute()
                await db.execute(f"DELETE FROM {PREFIX}event_outbox WHERE id = ANY($1)", outbox)
        return len(rows)

    async def store(
        self, db: asyncpg.Connection, found: list[dict[str, Any]]
    ) -> tuple[list[int], list[tuple[str, str]]]:
        """One conversation's messages: the outbox rows staged and their events."""
        wa_id = found[0]["from"]
        contact = await db.fetchval(UPSERT_CONTACT, self.company, f"+{wa_id}",
                                    found[-1]["name"], wa_id)  # fmt: skip
        conversation = await db.fetchval(UPSERT_CONVERSATION, self.company, self.instance,
                                         contact, wa_id, None)  # fmt: skip
        texts = [m.get("text", {}).get("body", "") for m in found]
        keys, rows = [m["id"] for m in found], [orjson.dumps(m).decode() for m in found]
        times = [float(m["timestamp"]) for m in found]
        new = await db.fetch(INSERT_MESSAGES, self.company, conversation, self.instance, keys,
                             texts, rows, times)  # fmt: skip
        if not new:
            return [], []
        bumped = await db.fetchrow(BUMP, conversation, len(new), new[-1]["body"])
        await db.execute(QUEUE, self.company, [m["id"] for m in new])
        payloads = [("message.created", event("message.created", conversation, {
            **dict(m), "conversation_id": conversation, "direction": "inbound", "type": "text",
        })) for m in new]  # fmt: skip
        payloads.append(("conversation.updated", event("conversation.updated", conversation,
                                                       dict(bumped or {}))))  # fmt: skip
        outbox = await db.fetch(STAGE, self.company, [k for k, _ in payloads],
                                [p for _, p in payloads])  # fmt: skip
        return [r["id"] for r in outbox], payloads


async def run_worker(company_id: str, instance_id: str) -> None:
    """The relay's loop: a pass per NOTIFY (a full pass goes on at once), else a sweep, passes
    ``relay_pass_interval_ms`` apart at least."""
    settings = load_settings()
    interval, clock = settings.relay_pass_interval_ms / 1000, asyncio.get_running_loop().time
    pool = await asyncpg.create_pool(dsn(), min_size=2, max_size=10)
    persister = Persister(pool, Redis.from_url(settings.redis_url), company_id, instance_id)
    wake = asyncio.Event()
    listener = await asyncpg.connect(dsn())
    await listener.add_listener(CHANNEL, lambda *_: wake.set())
    while True:
        wake.clear()
        started = clock()
        if await persister.relay_once() >= BATCH_SIZE:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), SWEEP_SECONDS)
        await asyncio.sleep(max(0.0, started + interval - clock()))


# --- embeddings ----------------------------------------------------------------------------------

CLAIM = f"""WITH claimed AS (
  UPDATE {PREFIX}embedding_queue SET claimed_until = now() + interval '60 seconds'
  WHERE message_id IN (SELECT message_id FROM {PREFIX}embedding_queue
    WHERE skipped_reason IS NULL AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY enqueued_at LIMIT $1 FOR UPDATE SKIP LOCKED)
  RETURNING message_id)
SELECT m.id, m.company_id, m.conversation_id, c.contact_id, m.body FROM claimed
JOIN {PREFIX}messages m ON m.id = claimed.message_id
JOIN {PREFIX}conversations c ON c.id = m.conversation_id"""
STORE = f"""INSERT INTO {PREFIX}conversation_embeddings (id, company_id, conversation_id,
  message_id, contact_id, embedding, model, content_hash, created_at)
VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, now())
ON CONFLICT (message_id, model) DO NOTHING"""
FINISH = f"DELETE FROM {PREFIX}embedding_queue WHERE message_id = ANY($1::uuid[])"


async def run_embedder() -> None:
    """Claim a batch, embed it in one model call, store the vectors and take the rows off the
    queue in one transaction; wait ``LINGER_SECONDS`` when the queue held less than a batch."""
    from pgvector.asyncpg import register_vector

    from zapflow.embeddings import content_hash, embeddable_text
    from zapflow.embeddings.e5 import E5Embedder

    settings = load_settings()
    model = E5Embedder(settings.embedding_e5_variant, batch_size=settings.embedding_batch_size)
    pool = await asyncpg.create_pool(dsn(), min_size=1, max_size=2, init=register_vector)
    while True:
        async with pool.acquire() as db, db.transaction():
            batch = await db.fetch(CLAIM, settings.embedding_batch_size)
        shortest = settings.embedding_min_chars
        texts = [(m, t) for m in batch if (t := embeddable_text(m["body"], None, shortest))]
        vectors = await model.embed([t for _, t in texts])
        async with pool.acquire() as db, db.transaction():
            await db.executemany(STORE, [
                (m["company_id"], m["conversation_id"], m["id"], m["contact_id"], v, model.model,
                 content_hash(t)) for (m, t), v in zip(texts, vectors, strict=True)
            ])  # fmt: skip
            await db.execute(FINISH, [m["id"] for m in batch])
        if len(batch) < settings.embedding_batch_size:
            await asyncio.sleep(LINGER_SECONDS)


def main(argv: list[str]) -> None:
    import uvloop

    role, *args = argv
    if role == "web":
        port, company_id, instance_id, app_secret, api_key = args
        serve(create_app(company_id, instance_id, app_secret, api_key), int(port))
    elif role == "worker":
        uvloop.run(run_worker(*args))
    else:
        uvloop.run(run_embedder())


if __name__ == "__main__":
    main(sys.argv[1:])
