"""The load generator: a process of its own (``python -m zapflow.bench.loadgen PLAN OUT``), so its
CPU is not the system's under test, running on uvloop with aiohttp.

Load is open loop: request i is due at ``t0 + i / rate`` and runs in its own task, so a slow
answer never delays the next one, and every latency counts from the request's due time (no
coordinated omission). A request still unanswered ``REQUEST_TIMEOUT`` after it was due counts as
an error. The plan (JSON) says what to send; the raw samples go to OUT (JSON) for the runner to
analyse; progress goes to stdout as one JSON object per line.

Modes: ``webhook`` (signed Cloud API deliveries; optionally an SSE client stamping each
``message.created`` and a backlog poller), ``http`` (the CRM read mix, open loop at a rate or
closed loop at a concurrency for saturation), ``followups`` (create follow-ups, play the Cloud API
send endpoint and stamp each message it receives), ``campaign`` (play the Cloud API for a
campaign while customers write in, as ``webhook`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from zapflow.bench.crm import ACCEPT_ENCODING, Targets, mix_picker
from zapflow.seed import TOPICS, Rng, Writer
from zapflow.whatsapp.simulate import cloud_delivery, cloud_signature, cloud_text

REQUEST_TIMEOUT = 10.0
PROGRESS_EVERY = 0.25
BACKLOG_EVERY = 0.5
FOLLOWUP_CREATORS = 10  # concurrent POST .../followups
WEBHOOK_CONNECTIONS = 500  # beyond, deliveries wait for a connection (their latency counts it)


class Progress:
    """One JSON line on stdout at most every PROGRESS_EVERY seconds (and always when forced)."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, force: bool = False, **fields: Any) -> None:
        now = time.perf_counter()
        if force or now - self._last >= PROGRESS_EVERY:
            self._last = now
            sys.stdout.write(orjson.dumps(fields).decode() + "\n")
            sys.stdout.flush()


async def open_loop(
    rate: float,
    count: int,
    fire: Callable[[int, float], Coroutine[Any, Any, None]],
    progress: Callable[[int], None],
) -> None:
    """Start fire(i, due) at due = t0 + i/rate, each as its own task; return once all ended."""
    tasks: set[asyncio.Task[None]] = set()
    t0 = time.perf_counter() + 0.05
    for i in range(count):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(fire(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        progress(i + 1)
    if tasks:
        await asyncio.wait(tasks)


def http_session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=2),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )


# --- webhook mode --------------------------------------------------------------------------------


@dataclass
class Delivery:
    key_id: str
    scheduled: float  # perf_counter time it was due
    sent: float | None = None
    acked: float | None = None
    status: int | None = None
    error: str | None = None
    seen: float | None = None  # first message.created on the SSE stream
    seen_count: int = 0

    def row(self, t0: float) -> list[Any]:
        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - t0, 6)

        return [
            rel(self.scheduled),
            rel(self.sent),
            rel(self.acked),
            self.status,
            self.error,
            rel(self.seen),
            self.seen_count,
        ]


class SseReader:
    """The company's live stream; stamps each ``message.created`` of a known key id on arrival."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        api_key: str,
        deliveries: dict[str, Delivery],
    ) -> None:
        self._session, self._url, self._deliveries = session, url, deliveries
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.connected = asyncio.Event()
        self.last_id: str | None = None
        self.reconnects = 0
        self.failure: str | None = None

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        while True:
            headers = {**self._headers, **({"Last-Event-ID": self.last_id} if self.last_id else {})}
            try:
                async with self._session.get(self._url, headers=headers, timeout=timeout) as resp:
                    if resp.status != 200:
                        self.failure = f"{resp.status} {(await resp.text())[:200]}"
                        return
                    await self._read(resp)
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.reconnects += 1  # the server ends streams after their maximum lifetime
            await asyncio.sleep(0.2)

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        fields: dict[str, str] = {}
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if line == ": live":  # subscribed: what is published from now on arrives
                self.connected.set()
            elif line == "":
                if "data" in fields:
                    self._event(fields, time.perf_counter())
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    def _event(self, fields: dict[str, str], now: float) -> None:
        self.last_id = fields.get("id", self.last_id)
        event = orjson.loads(fields["data"])
        if event.get("type") != "message.created":
            return
        delivery = self._deliveries.get(str((event.get("data") or {}).get("message_key_id")))
        if delivery is not None:
            delivery.seen_count += 1
            if delivery.seen is None:
                delivery.seen = now


class BacklogPoller:
    """Every BACKLOG_EVERY s: inbox rows waiting for the relay, the company's stored inbound
    messages (acknowledged - stored - inbox = what Temporal holds) and its messages waiting on
    the embedding queue (the embedder may lag: its CPU then lands after the step's window)."""

    def __init__(
        self, database_url: str, company_id: str, acked: Callable[[], int], prefix: str = ""
    ) -> None:
        self._dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._company_id = uuid.UUID(company_id)
        self._acked = acked
        self._prefix = prefix  # the same-work floor's copies of the tables (bench/work_floor.py)
        # (perf_counter, acknowledged so far, inbox pending, stored, waiting to be embedded)
        self.points: list[tuple[float, int, int, int, int]] = []

    async def run(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        p = self._prefix
        try:
            while True:
                row = await connection.fetchrow(
                    f"SELECT (SELECT count(*) FROM {p}inbox_events WHERE status = 'pending'),"
                    f" (SELECT count(*) FROM {p}messages WHERE company_id = $1"
                    "  AND direction = 'inbound'),"
                    f" (SELECT count(*) FROM {p}embedding_queue WHERE company_id = $1"
                    "  AND skipped_reason IS NULL)",
                    self._company_id,
                )
                assert row is not None
                now = time.perf_counter()
                self.points.append((now, self._acked(), int(row[0]), int(row[1]), int(row[2])))
                await asyncio.sleep(BACKLOG_EVERY)
        finally:
            await connection.close()


def customer_text(key_id: str) -> str:
    """What the customer of message ``key_id`` writes: a line of the seed's scripts
    (zapflow/seed.py), three in four in Portuguese. Greetings and thanks (45 %) are sent as
    customers write them, so they repeat as they do in real chats (and the embedder reuses their
    vectors: embeddings/recent.py); questions carry the message's number, as real ones carry
    their specifics, so none repeats. The key id the bench sent before cost the embedder ~20
    tokens a message; these average 13."""
    rng = Rng(zlib.crc32(key_id.encode()))
    writer = Writer(rng, "pt" if rng.random() < 0.75 else "en", "")
    phrases, kind = writer.phrases, rng.random()
    if kind < 0.25:
        return rng.choice(phrases.hello)
    if kind < 0.45:
        return rng.choice(phrases.thanks + phrases.follow_up_reply)
    step, n = key_id.rsplit(".", 2)[-2:]  # wamid.<run>.<step>.<n>
    question = writer.fill(rng.choice(phrases.questions[rng.choice(TOPICS)]))
    return f"{question} #{int(step) * 1_000_000 + int(n)}"


class Webhooks:
    """Sends signed single-message Cloud deliveries and records each one's fate."""

    def __init__(self, session: aiohttp.ClientSession, plan: dict[str, Any]) -> None:
        self._session = session
        self._url = plan["webhook_url"]
        self._secret = plan["app_secret"]
        self._phone_number_id = plan["phone_number_id"]
        self.deliveries: dict[str, Delivery] = {}
        self.acked = 0

    def new(self, key_id: str, due: float) -> Delivery:
        delivery = Delivery(key_id, due)
        self.deliveries[key_id] = delivery  # before the send: its event cannot come earlier
        return delivery

    async def send(self, delivery: Delivery, wa_id: str) -> None:
        change = cloud_text(
            wa_id, delivery.key_id, customer_text(delivery.key_id), name=f"Customer {wa_id[-4:]}"
        )
        raw = orjson.dumps(cloud_delivery(self._phone_number_id, change))
        headers = {
            "content-type": "application/json",
            "x-hub-signature-256": cloud_signature(raw, self._secret),
        }
        delivery.sent = time.perf_counter()
        try:
            async with self._session.post(self._url, data=raw, headers=headers) as resp:
                await resp.read()
                delivery.status = resp.status
                if resp.status == 200:
                    self.acked += 1
                else:
                    delivery.error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = type(exc).__name__
        delivery.acked = time.perf_counter()


async def wait_seen(
    batch: list[Delivery], deadline: float, progress: Callable[[int], None]
) -> bool:
    """Until every acknowledged delivery of ``batch`` was seen on the stream, or ``deadline``."""
    while (seen := sum(1 for d in batch if d.seen or d.error)) < len(batch):
        if time.perf_counter() >= deadline:
            return False
        progress(seen)
        await asyncio.sleep(0.02)
    return True


async def webhook_step(
    hooks: Webhooks,
    step: dict[str, Any],
    prefix: str,
    sse: bool,
    drain_timeout: float,
    progress: Progress,
) -> dict[str, Any]:
    rate, count = float(step["rate"]), int(step["rate"] * step["duration"])
    customers = [f"55{step['customer_base'] + j:011d}" for j in range(step["customers"])]
    batch: list[Delivery] = []

    async def fire(i: int, due: float) -> None:
        delivery = hooks.new(f"wamid.{prefix}.{i:07d}", due)
        batch.append(delivery)
        await hooks.send(delivery, customers[i % len(customers)])

    def sent(done: int) -> None:
        progress(step=step["name"], phase="sending", done=done, total=count)

    started = time.perf_counter()
    await open_loop(rate, count, fire, sent)
    progress(True, step=step["name"], phase="sent", done=count, total=count)
    last_sent = max((d.sent or 0.0) for d in batch)
    drained = None
    if sse:

        def seen(done: int) -> None:
            progress(step=step["name"], phase="draining", done=done, total=count)

        if await wait_seen(batch, last_sent + drain_timeout, seen):
            drained = round(max(d.seen or 0.0 for d in batch) - last_sent, 3)
    t0 = min(d.scheduled for d in batch)
    return {
        "name": step["name"],
        "rate": rate,
        "started": started,
        "ended": time.perf_counter(),
        "t0": t0,
        "samples": [d.row(t0) for d in batch],
        "drain_s": drained,
    }


def failed_most(samples: list[list[Any]]) -> bool:
    """Half or more of a step's deliveries failed (``Delivery.row``: the error is column 4)."""
    return sum(1 for row in samples if row[4] is not None) * 2 >= max(1, len(samples))


async def webhook_mode(
    plan: dict[str, Any],
    progress: Progress,
    before_step: Callable[[int], Coroutine[Any, Any, None]] | None = None,
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    async with http_session(limit=WEBHOOK_CONNECTIONS) as session:
        hooks = Webhooks(session, plan)
        background: list[asyncio.Task[None]] = []
        reader = poller = None
        if plan.get("sse"):
            reader = SseReader(
                session, plan["base_url"] + "/api/v1/stream", plan["api_key"], hooks.deliveries
            )
            background.append(asyncio.create_task(reader.run()))
            await asyncio.wait_for(reader.connected.wait(), 15)
        if plan.get("database_url"):
            poller = BacklogPoller(plan["database_url"], plan["company_id"],
                                   lambda: hooks.acked, plan.get("table_prefix", ""))  # fmt: skip
            background.append(asyncio.create_task(poller.run()))
        try:
            steps: list[dict[str, Any]] = []
            for n, step in enumerate(plan["steps"]):
                if before_step:
                    await before_step(n)
                steps.append(await webhook_step(
                    hooks, step, f"{run_id}.{n}", bool(reader), plan["drain_timeout"], progress
                ))  # fmt: skip
                if reader and steps[-1]["drain_s"] is None:
                    break  # not sustained: a higher rate would only pile up more backlog
                if failed_most(steps[-1]["samples"]):
                    break  # overloaded: a higher rate would only measure timeouts
            if reader and steps[-1]["drain_s"] is not None:
                await asyncio.sleep(1.0)  # late duplicates
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
    for step in steps:  # duplicates seen after the step ended, too
        step["duplicates"] = sum(1 for row in step["samples"] if row[6] > 1)
        step["backlog"] = [  # [t, inbox pending, held by Temporal (acknowledged, not stored),
            # stored and not yet embedded, stored and embedded (or too short to be)]
            [round(t - step["t0"], 3), pending, max(0, acked - pending - stored), queued,
             stored - queued]
            for t, acked, pending, stored, queued in (poller.points if poller else [])
            if step["started"] - 1 <= t <= step["ended"]
        ]  # fmt: skip
        del step["started"], step["ended"]
    skipped = [step["name"] for step in plan["steps"][len(steps) :]]
    return {
        "steps": steps,
        "skipped": skipped,
        "sse_reconnects": reader.reconnects if reader else None,
    }


# --- floor mode (the Temporal floor of the pipeline) ---------------------------------------------


async def floor_step(
    driver: Any, step: dict[str, Any], prefix: str, drain_timeout: float, progress: Progress
) -> dict[str, Any]:
    """Messages at ``rate`` over the conversations, each a Temporal RPC (``acked`` when it
    returned) and ``seen`` when its batch's no-op local activity ran."""
    from zapflow.bench import temporal_floor

    rate, count = float(step["rate"]), int(step["rate"] * step["duration"])
    batch: list[Delivery] = []

    async def fire(i: int, due: float) -> None:
        delivery = Delivery(f"{prefix}.{i:07d}", due)
        batch.append(delivery)
        delivery.sent = time.perf_counter()
        try:
            await asyncio.wait_for(
                driver.signal(i, delivery.key_id, start=step["start"]), REQUEST_TIMEOUT
            )
            delivery.status = 200
        except Exception as exc:  # an RPC error or a timeout: counted as an error
            delivery.error = type(exc).__name__
        delivery.acked = time.perf_counter()

    def sent(done: int) -> None:
        progress(step=step["name"], phase="sending", done=done, total=count)

    def seen(done: int) -> None:
        progress(step=step["name"], phase="draining", done=done, total=count)

    await open_loop(rate, count, fire, sent)
    last_sent = max((d.sent or 0.0) for d in batch)
    ok = [d.key_id for d in batch if d.error is None]
    drained = None
    if await temporal_floor.wait_seen(ok, last_sent + drain_timeout, seen):
        drained = round(max((temporal_floor.SEEN[k] for k in ok), default=last_sent) - last_sent, 3)
    for delivery in batch:
        delivery.seen = temporal_floor.SEEN.get(delivery.key_id)
        delivery.seen_count = 1 if delivery.seen else 0
    t0 = min(d.scheduled for d in batch)
    return {
        "name": step["name"],
        "rate": rate,
        "t0": t0,
        "samples": [d.row(t0) for d in batch],
        "drain_s": drained,
        "duplicates": 0,
        "backlog": [],
    }


async def floor_mode(plan: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """The Temporal floor's worker and its client in this process (see bench/temporal_floor.py)."""
    from temporalio.client import Client

    from zapflow.bench.temporal_floor import FloorDriver

    run_id = uuid.uuid4().hex[:8]
    client = await Client.connect(plan["temporal_address"], namespace=plan["temporal_namespace"])
    driver = FloorDriver(client, run_id, plan["conversations"])
    worker = driver.worker()
    steps: list[dict[str, Any]] = []
    async with worker:
        try:
            for n, step in enumerate(plan["steps"]):
                steps.append(
                    await floor_step(driver, step, f"{run_id}.{n}", plan["drain_timeout"], progress)
                )
                if steps[-1]["drain_s"] is None:
                    break  # not sustained
        finally:
            progress(True, step="teardown", phase="terminating the workflows")  # ends the window
            await driver.stop()
    return {
        "steps": steps,
        "skipped": [step["name"] for step in plan["steps"][len(steps) :]],
        "sse_reconnects": None,
    }


# --- http mode (CRM reads) -----------------------------------------------------------------------


async def get(
    session: aiohttp.ClientSession,
    base_url: str,
    call: tuple[str, str, dict[str, Any]],
    due: float,
    records: list[list[Any]],
) -> None:
    route, path, params = call
    status: int | None = None
    error: str | None = None
    try:
        async with session.get(base_url + path, params=params) as resp:
            await resp.read()
            status = resp.status
            if not 200 <= status < 300:
                error = f"HTTP {status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = type(exc).__name__
    records.append([route, due, (time.perf_counter() - due) * 1000, status, error])


async def http_step(
    session: aiohttp.ClientSession, plan: dict[str, Any], step: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    pick = mix_picker(Targets(**plan["targets"]), step.get("route"))
    rng = random.Random(f"{plan['seed']}/{step['name']}")
    records: list[list[Any]] = []
    base = plan["base_url"]
    if "rate" in step:
        count = int(step["rate"] * step["duration"])

        async def fire(_: int, due: float) -> None:
            await get(session, base, pick(rng), due, records)

        def sent(done: int) -> None:
            progress(step=step["name"], done=done, total=count)

        await open_loop(float(step["rate"]), count, fire, sent)
        measured = records
    else:  # closed loop: each client sends its next request when the previous answer is in
        begin = time.perf_counter()
        stop_at = begin + step["warmup"] + step["duration"]

        async def client() -> None:
            while (now := time.perf_counter()) < stop_at:
                await get(session, base, pick(rng), now, records)
                progress(
                    step=step["name"],
                    done=round(now - begin, 1),
                    total=step["warmup"] + step["duration"],
                )

        await asyncio.gather(*(client() for _ in range(step["concurrency"])))
        measured = [r for r in records if r[1] >= begin + step["warmup"]]
    t0 = min((r[1] for r in measured), default=0.0)
    for record in measured:
        record[1] = round(record[1] - t0, 6)
    return {"name": step["name"], "records": measured, "total": len(records)}


async def http_mode(plan: dict[str, Any], progress: Progress) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {plan['api_key']}", "Accept-Encoding": ACCEPT_ENCODING}
    async with http_session(limit=plan.get("connections", 256)) as session:
        session.headers.update(headers)
        return {"steps": [await http_step(session, plan, step, progress) for step in plan["steps"]]}


# --- followups mode ------------------------------------------------------------------------------


class ProviderReceiver:
    """Plays the Cloud API send endpoint; stamps each text it receives (epoch seconds)."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.time()
        text = (body.get("text") or {}).get("body", "")
        self.received.setdefault(text, now)
        to = body.get("to", "")
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.bench.{uuid.uuid4().hex}"}],
            }
        )


async def create_followup(
    session: aiohttp.ClientSession, plan: dict[str, Any], item: dict[str, Any]
) -> tuple[int | None, str]:
    url = f"{plan['base_url']}/api/v1/conversations/{item['conversation_id']}/followups"
    try:
        async with session.post(url, json={"at": item["at"], "text": item["text"]}) as response:
            return response.status, (await response.text())[:200]
    except (aiohttp.ClientError, TimeoutError) as exc:
        return None, type(exc).__name__


async def followups_mode(plan: dict[str, Any], progress: Progress) -> dict[str, Any]:
    receiver = ProviderReceiver()
    app = web.Application()
    app.router.add_post("/{version}/{phone_number_id}/messages", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", plan["receiver_port"]).start()
    wanted = plan["followups"]
    created: list[list[Any]] = []  # [text, status (None: no answer), body or error, epoch]
    try:
        async with http_session() as session:
            session.headers.update({"Authorization": f"Bearer {plan['api_key']}"})
            queue = list(reversed(wanted))

            async def creator() -> None:  # one request at a time: no time spent queued
                while queue:
                    item = queue.pop()
                    status, body = await create_followup(session, plan, item)
                    created.append([item["text"], status, body, time.time()])
                    progress(step="followups", phase="creating", done=len(created),
                             total=len(wanted))  # fmt: skip

            await asyncio.gather(*(creator() for _ in range(FOLLOWUP_CREATORS)))
            ok = {text for text, status, *_ in created if status == 201}
            while time.time() < plan["wait_until"] and not ok <= receiver.received.keys():
                progress(step="followups", phase="waiting", done=len(receiver.received),
                         total=len(ok))  # fmt: skip
                await asyncio.sleep(0.1)
    finally:
        await runner.cleanup()
    return {"created": created, "received": receiver.received}


# --- campaign mode -------------------------------------------------------------------------------


class CampaignProvider:
    """Plays the Cloud API for a campaign: the account's templates (one page) and the send
    endpoint, stamping each send with its recipient (epoch seconds)."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.template = template
        self.sends: list[list[Any]] = []  # [to, epoch]

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        to = str(body.get("to", ""))
        self.sends.append([to, time.time()])
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.bench.{uuid.uuid4().hex}"}],
            }
        )

    async def templates(self, _: web.Request) -> web.Response:
        return web.json_response({"data": [self.template], "paging": {"cursors": {}}})


async def campaign_mode(plan: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Customers write in alone (step 0), then during a campaign (step 1, named ``campaign``,
    as are the progress lines until the provider has every recipient's send)."""
    provider = CampaignProvider(plan["template"])
    app = web.Application()
    app.router.add_post("/{version}/{phone_number_id}/messages", provider.send)
    app.router.add_get("/{version}/{account}/message_templates", provider.templates)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", plan["receiver_port"]).start()
    created: dict[str, Any] = {}

    async def before_step(n: int) -> None:
        async with http_session() as session:
            session.headers.update({"Authorization": f"Bearer {plan['api_key']}"})
            url, body = plan["requests"][n]  # the templates' sync, then the campaign
            async with session.post(url, json=body) as response:
                if response.status not in (200, 201):
                    raise RuntimeError(f"{url}: {response.status} {await response.text()}")
                if n == 1:
                    created.update(await response.json(), created_at=time.time())

    try:
        inbound = await webhook_mode(plan["inbound"], progress, before_step)
        total, deadline = plan["recipients"], time.time() + plan["wait_s"]
        while len(provider.sends) < total and time.time() < deadline:
            progress(step="campaign", phase="sending", done=len(provider.sends), total=total)
            await asyncio.sleep(0.25)
    finally:
        await runner.cleanup()
    return {"inbound": inbound, "sends": provider.sends, "created_at": created.get("created_at")}


MODES = {
    "campaign": campaign_mode,
    "webhook": webhook_mode,
    "http": http_mode,
    "followups": followups_mode,
    "floor": floor_mode,
}


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    return await MODES[plan["mode"]](plan, Progress())


def main(argv: list[str]) -> int:
    import uvloop

    plan_path, out_path = argv
    plan = orjson.loads(Path(plan_path).read_bytes())
    with contextlib.suppress(KeyboardInterrupt):
        result = uvloop.run(run(plan))
        Path(out_path).write_bytes(orjson.dumps(result))
        return 0
    return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
