"""Pipeline latency: webhook ack and webhook → SSE ``message.created``, open loop at a fixed rate.

Starts its own embedded stack (durable, headless Temporal) in a temporary folder on free ports,
runs ``zapflow api`` and ``zapflow worker`` as subprocesses, creates a company and a Cloud API
instance, listens on ``/api/v1/stream``, then sends signed single-message Cloud deliveries on a
fixed schedule (send i at t0 + i/rate, each in its own task, so a slow answer never delays the
next send). For every message it records the ack latency (request sent → 200) and the end-to-end
latency (request sent → its ``message.created`` event on the SSE stream, matched by
``data.message_key_id``). Prints a table and writes JSON to bench/results/.

    .venv/bin/python bench/pipeline_latency.py --messages 600 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from _harness import (
    RESULTS,
    BenchError,
    BenchStack,
    git_state,
    install_signal_handlers,
    machine,
    run_async,
    summarize,
    write_json,
)

from zapflow.devstack import EmbeddedStack
from zapflow.whatsapp.simulate import cloud_delivery, cloud_signature, cloud_text

DEFAULT_OUTPUT = RESULTS / "pipeline_latency.json"
APP_SECRET = "bench-app-secret"
WARMUP_TIMEOUT = 60.0
DUPLICATE_SETTLE = 2.0  # after every message was seen, keep listening this long for duplicates


@dataclass
class Sample:
    key_id: str
    scheduled: float  # perf_counter time the send was due
    sent: float | None = None
    acked: float | None = None
    status: int | None = None
    error: str | None = None
    seen: list[float] = field(default_factory=list)  # arrival times of its message.created

    @property
    def ack_ms(self) -> float | None:
        if self.sent is None or self.acked is None or self.error:
            return None
        return (self.acked - self.sent) * 1000

    @property
    def e2e_ms(self) -> float | None:
        if self.sent is None or not self.seen:
            return None
        return (self.seen[0] - self.sent) * 1000


# --- SSE ---------------------------------------------------------------------------------------


class SseCollector:
    """Reads the company stream in the background; stamps each ``message.created`` on arrival."""

    def __init__(self, client: httpx.AsyncClient, samples: dict[str, Sample]) -> None:
        self._client = client
        self._samples = samples
        self.connected = asyncio.Event()
        self.last_id: str | None = None
        self.reconnects = 0
        self.failure: str | None = None
        self.foreign_events = 0  # message.created for key ids this run did not send

    async def run(self) -> None:
        while True:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                async with self._client.stream(
                    "GET", "/api/v1/stream", headers=headers, timeout=None
                ) as response:
                    if response.status_code != 200:
                        self.failure = f"{response.status_code} {(await response.aread())[:200]!r}"
                        return
                    self.connected.set()
                    await self._read(response)
            except httpx.HTTPError:
                pass
            self.reconnects += 1  # the server ends streams after their maximum lifetime
            await asyncio.sleep(0.2)

    async def _read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
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
        sample = self._samples.get(str((event.get("data") or {}).get("message_key_id")))
        if sample is None:
            self.foreign_events += 1
        else:
            sample.seen.append(now)


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Target:
    webhook_url: str
    phone_number_id: str


async def send(client: httpx.AsyncClient, target: Target, sample: Sample, wa_id: str) -> None:
    raw = orjson.dumps(
        cloud_delivery(
            target.phone_number_id,
            cloud_text(
                wa_id, sample.key_id, f"bench {sample.key_id}", name=f"Customer {wa_id[-3:]}"
            ),
        )
    )
    headers = {
        "content-type": "application/json",
        "x-hub-signature-256": cloud_signature(raw, APP_SECRET),
    }
    sample.sent = time.perf_counter()
    try:
        response = await client.post(target.webhook_url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        sample.acked = time.perf_counter()
        sample.error = f"{type(exc).__name__}: {exc}"
        return
    sample.acked = time.perf_counter()
    sample.status = response.status_code
    if response.status_code != 200:
        sample.error = f"HTTP {response.status_code}: {response.text[:200]}"


async def open_loop(
    client: httpx.AsyncClient,
    target: Target,
    samples: dict[str, Sample],
    *,
    count: int,
    rate: float,
    key_prefix: str,
    customers: list[str],
) -> list[Sample]:
    """Fire send i at t0 + i/rate, each as its own task; return once every answer is in."""
    batch: list[Sample] = []
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter() + 0.05
    for i in range(count):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sample = Sample(key_id=f"{key_prefix}.{i:06d}", scheduled=due)
        samples[sample.key_id] = sample  # before the send: its event cannot come earlier
        batch.append(sample)
        wa_id = customers[i % len(customers)]
        tasks.append(asyncio.create_task(send(client, target, sample, wa_id)))
    await asyncio.gather(*tasks)
    return batch


async def wait_seen(batch: list[Sample], deadline: float) -> bool:
    """Wait until every acknowledged message of ``batch`` was seen, or the deadline passes."""
    while True:
        if all(s.seen for s in batch if s.error is None):
            return True
        if time.perf_counter() >= deadline:
            return False
        await asyncio.sleep(0.02)


async def run_load(base_url: str, api_key: str, args: argparse.Namespace) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {api_key}"}
    samples: dict[str, Sample] = {}
    run_id = uuid.uuid4().hex[:8]
    # keep-alive shorter than uvicorn's 5 s, so no request lands on a connection it just closed
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=2)
    async with (
        httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as api,
        httpx.AsyncClient(base_url=base_url, headers=auth, timeout=None) as sse_client,
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as webhooks,
    ):
        phone_number_id = str(100000000000000 + int(run_id, 16) % 10**12)
        response = await api.post(
            "/api/v1/instances",
            json={
                "name": "Bench",
                "provider": "cloud",
                "phone_number_id": phone_number_id,
                "access_token": "bench-token",
                "app_secret": APP_SECRET,
            },
        )
        if response.status_code != 201:
            raise BenchError(f"creating the instance: {response.status_code} {response.text}")
        # the path only: ZAPFLOW_PUBLIC_URL, if set, must not send us elsewhere
        target = Target(urlsplit(response.json()["webhook_url"]).path, phone_number_id)

        collector = SseCollector(sse_client, samples)
        reader = asyncio.create_task(collector.run())
        try:
            try:
                await asyncio.wait_for(collector.connected.wait(), 10)
            except TimeoutError:
                raise BenchError(f"the SSE stream did not open: {collector.failure}") from None
            await asyncio.sleep(0.5)  # the stream picks its starting point right after connecting

            # warm-up: own customers, not counted; wait until it has gone all the way through
            warm = await open_loop(
                webhooks, target, samples, count=args.warmup, rate=min(args.rate, 20.0),
                key_prefix=f"wamid.warm.{run_id}",
                customers=[f"55119{80000000 + j:08d}" for j in range(args.warmup)],
            )  # fmt: skip
            if not await wait_seen(warm, time.perf_counter() + WARMUP_TIMEOUT):
                missing = sum(1 for s in warm if not s.seen)
                errors = sorted({s.error for s in warm if s.error})
                raise BenchError(
                    f"warm-up: {missing}/{len(warm)} messages not seen within "
                    f"{WARMUP_TIMEOUT:.0f} s (errors: {errors[:3]})"
                )
            await asyncio.sleep(1.0)

            customers = [f"55119{70000000 + j:08d}" for j in range(args.customers)]
            load_avg_before = os.getloadavg()
            measured = await open_loop(
                webhooks, target, samples, count=args.messages, rate=args.rate,
                key_prefix=f"wamid.bench.{run_id}", customers=customers,
            )  # fmt: skip
            last_sent = max(s.sent or 0.0 for s in measured)
            all_seen = await wait_seen(measured, last_sent + args.loss_timeout)
            if all_seen:
                await asyncio.sleep(DUPLICATE_SETTLE)
            load_avg_after = os.getloadavg()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    return {
        "run_id": run_id,
        "measured": measured,
        "warmup": warm,
        "sse_reconnects": collector.reconnects,
        "sse_foreign_events": collector.foreign_events,
        "load_average_before": load_avg_before,
        "load_average_after": load_avg_after,
    }


# --- statistics and report --------------------------------------------------------------------


def analyse(measured: list[Sample]) -> dict[str, Any]:
    errors = [s for s in measured if s.error]
    acked = [s for s in measured if not s.error]
    sends = [s.sent for s in measured if s.sent is not None]
    span = max(sends) - min(sends) if len(sends) > 1 else 0.0
    seen_at = [s.seen[0] for s in acked if s.seen]
    delivered_span = max(seen_at) - min(sends) if seen_at and sends else 0.0
    lag = [(s.sent - s.scheduled) * 1000 for s in measured if s.sent is not None]
    return {
        "count": len(measured),
        "errors": len(errors),
        "error_samples": sorted({s.error for s in errors if s.error})[:5],
        "lost": sum(1 for s in acked if not s.seen),
        "lost_key_ids": [s.key_id for s in acked if not s.seen][:20],
        "duplicates": sum(1 for s in measured if len(s.seen) > 1),
        "duplicate_key_ids": [s.key_id for s in measured if len(s.seen) > 1][:20],
        "ack_ms": summarize([v for s in measured if (v := s.ack_ms) is not None]),
        "e2e_ms": summarize([v for s in acked if (v := s.e2e_ms) is not None]),
        "achieved_rate": round((len(sends) - 1) / span, 2) if span else None,
        "delivered_rate": round(len(seen_at) / delivered_span, 2) if delivered_span else None,
        "send_lag_ms": summarize(lag),  # how late the client fired sends versus the schedule
        "e2e_timeline": timeline(measured),
    }


def timeline(measured: list[Sample], window: float = 5.0) -> list[dict[str, Any]]:
    """e2e p50/max per window of send time: a growing line is a backlog, a spike a stall."""
    t0 = min(s.scheduled for s in measured)
    windows: dict[int, list[float]] = {}
    for s in measured:
        if (v := s.e2e_ms) is not None:
            windows.setdefault(int((s.scheduled - t0) // window), []).append(v)
    return [
        {"from_s": k * window, "n": len(v), **{q: summarize(v)[q] for q in ("p50", "max")}}
        for k, v in sorted(windows.items())
    ]


def database_check(stack: EmbeddedStack, run_id: str) -> dict[str, Any]:
    """What zapflow stored, independent of the SSE stream (evidence for losses/duplicates)."""
    rows = stack.psql(
        "SELECT count(*), count(DISTINCT message_key_id) FROM messages "
        f"WHERE message_key_id LIKE 'wamid.bench.{run_id}.%'",
        database=stack.config.database,
    ).split("|")
    inbox = stack.psql(
        "SELECT status, count(*) FROM inbox_events GROUP BY status ORDER BY status",
        database=stack.config.database,
    )
    outbox = stack.psql("SELECT count(*) FROM event_outbox", database=stack.config.database)
    return {
        "messages_rows": int(rows[0]),
        "messages_distinct_key_ids": int(rows[1]),
        "inbox_events_by_status": {
            status: int(n) for status, n in (line.split("|") for line in inbox.split())
        },
        "event_outbox_unpublished": int(outbox.strip()),
    }


def print_table(result: dict[str, Any]) -> None:
    p, r = result["parameters"], result["results"]
    rate = r["achieved_rate"]
    print(
        f"\npipeline latency: {r['count']} messages at {p['rate']:g}/s "
        f"(achieved {rate if rate is not None else '-'}/s), {p['customers']} customers"
    )
    print(
        f"  errors {r['errors']}   lost {r['lost']}   duplicates {r['duplicates']}"
        f"   (stored rows {result['database']['messages_rows']}, "
        f"distinct {result['database']['messages_distinct_key_ids']})"
    )
    print(f"  {'ms':<6}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for name, key in (("ack", "ack_ms"), ("e2e", "e2e_ms")):
        cells = "".join(
            f"{v:>9.1f}" if v is not None else f"{'-':>9}"
            for v in (r[key][q] for q in ("p50", "p95", "p99", "max"))
        )
        print(f"  {name:<6}{cells}")
    print(f"  send lag p99 {r['send_lag_ms']['p99']} ms · delivered {r['delivered_rate']}/s\n")


# --- environment --------------------------------------------------------------------------------


def create_company(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "zapflow.cli", "companies", "create", "Bench", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"`zapflow companies create` failed ({done.returncode}): {done.stderr}")
    return str(json.loads(done.stdout)["api_key"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure zapflow's webhook ack and webhook → SSE latency at a fixed arrival "
        "rate (open loop), on a fresh embedded stack started just for this run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=600, help="measured messages")
    parser.add_argument("--rate", type=float, default=20.0, help="arrival rate, messages/s")
    parser.add_argument("--customers", type=int, default=100, help="distinct customer numbers")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up messages (not counted)")
    parser.add_argument(
        "--loss-timeout", type=float, default=30.0,
        help="seconds after the last send before an unseen message counts as lost",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON result file")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary data and logs folder"
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rate <= 0 or args.customers < 1 or args.warmup < 1:
        parser.error("--messages, --rate, --customers and --warmup must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    bench = BenchStack(["api", "worker"])
    started = time.monotonic()
    try:
        bench.start_stack()
        api_key = create_company(bench.env)
        bench.start_processes()
        print(f"ready in {time.monotonic() - started:.1f} s; warming up, then sending "
              f"{args.messages} messages at {args.rate:g}/s", flush=True)  # fmt: skip
        load = run_async(run_load(bench.base_url, api_key, args))
        bench.check_processes()
        result: dict[str, Any] = {
            "benchmark": "pipeline_latency",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git": git_state(),
            "machine": machine(),
            "parameters": {
                "messages": args.messages,
                "rate": args.rate,
                "customers": args.customers,
                "warmup": args.warmup,
                "loss_timeout_s": args.loss_timeout,
                "durable": True,
                "temporal": "headless dev server",
            },
            "results": analyse(load["measured"]),
            "warmup": {"count": len(load["warmup"]), "errors": analyse(load["warmup"])["errors"]},
            "database": database_check(bench.stack, load["run_id"]),
            "sse": {
                "reconnects": load["sse_reconnects"],
                "foreign_events": load["sse_foreign_events"],
            },
            "load_average": {
                "before": [round(x, 2) for x in load["load_average_before"]],
                "after": [round(x, 2) for x in load["load_average_after"]],
            },
        }
        print_table(result)
        write_json(args.output, result)
        print(f"wrote {args.output}")
        r = result["results"]
        return 0 if not (r["errors"] or r["lost"] or r["duplicates"]) else 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        bench.print_logs()
        return 1
    finally:
        bench.stop(keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
