"""The scenarios of ``zapflow bench``: each starts its own stack, runs the load generator and
turns its raw samples into the numbers of ``bench/results/<scenario>.json``.

Every latency counts from the moment the request was due (open loop). CPU is in % of one core
(200 = both cores of a 2-core machine), by process group; ``other`` is somebody else's work.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from zapflow.bench import floors, profile, work_floor
from zapflow.bench.crm import ACCEPT_ENCODING, MIX, pick_targets
from zapflow.bench.environment import REPO
from zapflow.bench.runner import Context, ScenarioFn
from zapflow.bench.stack import BenchError, BenchStack, free_port, per_unit_ms
from zapflow.bench.stats import counts_per_window, summarize, windows
from zapflow.config import load_settings

APP_SECRET = "bench-app-secret"
CUSTOMERS = 1000
DRAIN_TIMEOUT = 60.0  # a step not drained by then was not sustained: higher rates are skipped
RATE_LIMIT = 100_000_000  # the company's, per minute: the limiter runs, never refuses
SEED = 42
PROFILE_SECONDS = 20.0
AI_VARIANT = "inbox-ai"
AI_REPLY_DELAY = 600  # seconds: the most a company may set, longer than any step
AI_UNUSED_URL = "http://127.0.0.1:9/v1"  # loopback, nothing listens: the model is never reached


# --- set-up ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    company_id: str
    api_key: str
    instance_id: str
    webhook_url: str
    phone_number_id: str


def tenant(bench: BenchStack, name: str) -> Tenant:
    """A new company (``zapflow companies create``) with a Cloud API instance; the API runs."""
    created = bench.run_cli("companies", "create", name)
    phone_number_id = str(100000000000000 + uuid.uuid4().int % 10**12)
    response = httpx.post(
        f"{bench.base_url}/api/v1/instances",
        headers={"Authorization": f"Bearer {created['api_key']}"},
        json={
            "name": "Bench",
            "provider": "cloud",
            "phone_number_id": phone_number_id,
            "access_token": "bench-token",
            "app_secret": APP_SECRET,
        },
        timeout=30,
    )
    if response.status_code != 201:
        raise BenchError(f"creating the instance: {response.status_code} {response.text}")
    body = response.json()
    webhook_url = bench.base_url + urlsplit(body["webhook_url"]).path
    return Tenant(
        created["company_id"], created["api_key"], body["id"], webhook_url, phone_number_id
    )


def webhook_plan(
    bench: BenchStack,
    to: Tenant,
    steps: list[tuple[float, float]],
    *,
    sse: bool,
    customer_base: int,
    customers: int = CUSTOMERS,
    webhook_url: str | None = None,
) -> dict[str, Any]:
    """Signed deliveries to ``to``'s webhook (or ``webhook_url``), a step per (rate, seconds)."""
    return {
        "mode": "webhook",
        "base_url": bench.base_url,
        "api_key": to.api_key,
        "webhook_url": webhook_url or to.webhook_url,
        "app_secret": APP_SECRET,
        "phone_number_id": to.phone_number_id,
        "sse": sse,
        "database_url": bench.database_url,
        "company_id": to.company_id,
        "drain_timeout": DRAIN_TIMEOUT,
        "steps": [
            {
                "name": f"{rate:g}/s",
                "rate": rate,
                "duration": duration,
                "customers": customers,
                "customer_base": customer_base,
            }
            for rate, duration in steps
        ],
    }


def running(bench: BenchStack, fn: Callable[[BenchStack], dict[str, Any]]) -> dict[str, Any]:
    """``fn`` on a freshly started stack, stopped afterwards whatever happens."""
    try:
        bench.start_stack()
        return fn(bench)
    finally:
        bench.stop()


def memory(steps: Iterable[dict[str, Any]]) -> dict[str, float]:
    """The largest RSS of each zapflow process over the scenario's steps, in MiB."""
    peaks: dict[str, float] = {}
    for step in steps:
        for group, mib in step.get("peak_rss_mib", {}).items():
            if group.split(":")[0] in (
                "api",
                "worker",
                "direct",
                floors.API_FLOOR,
                floors.WORK_FLOOR,
            ):
                peaks[f"{group}_peak_rss_mib"] = max(peaks.get(f"{group}_peak_rss_mib", 0), mib)
    return peaks


def api_only(
    bench: BenchStack, settings: dict[str, Any], results: dict[str, Any], series: dict[str, Any]
) -> dict[str, Any]:
    """A scenario's result when the API ran alone."""
    return {
        "settings": settings,
        "results": results,
        "memory": memory(results.values()),
        "series": series,
        "api_log_lines": bench.log_lines("api"),
    }


# --- analysis ----------------------------------------------------------------------------------

SCHEDULED, SENT, ACKED, STATUS, ERROR, SEEN, SEEN_COUNT = range(7)


def ms(later: float, earlier: float) -> float:
    return (later - earlier) * 1000


def rate_over(times: list[float], since: float) -> float | None:
    span = max(times, default=since) - since
    return round(len(times) / span, 1) if span > 0 else None


def deliveries(
    step: dict[str, Any], usage: dict[str, Any], *, e2e: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A webhook step's numbers, and its series for the plots."""
    rows = step["samples"]
    ok = [r for r in rows if r[ERROR] is None]
    result: dict[str, Any] = {
        "rate": step["rate"],
        "sent": len(rows),
        "errors": len(rows) - len(ok),
        "error_rate_percent": round(100 * (len(rows) - len(ok)) / max(1, len(rows)), 3),
        "error_samples": dict(Counter(r[ERROR] for r in rows if r[ERROR]).most_common(3)),
        "achieved_rate": rate_over([r[SENT] for r in rows], 0.0),
        "ack_ms": summarize(ms(r[ACKED], r[SCHEDULED]) for r in ok),
        "send_lag_ms": summarize(ms(r[SENT], r[SCHEDULED]) for r in rows),
    }
    latency = [(r[SCHEDULED], ms(r[ACKED], r[SCHEDULED])) for r in ok]
    done = [r[ACKED] for r in ok]
    if e2e:
        seen = [r for r in ok if r[SEEN] is not None]
        backlog = step["backlog"]
        result.update(
            {
                "e2e_ms": summarize(ms(r[SEEN], r[SCHEDULED]) for r in seen),
                "lost": len(ok) - len(seen),
                "duplicates": step["duplicates"],
                "delivered_rate": rate_over([r[SEEN] for r in seen], 0.0),
                "drain_s": step["drain_s"],
                "max_inbox_backlog": max((b[1] for b in backlog), default=None),
                "max_temporal_backlog": max((b[2] for b in backlog), default=None),
                "max_backlog": max((b[1] + b[2] for b in backlog), default=None),
                **embedding_lag(backlog),
            }
        )
        latency = [(r[SCHEDULED], ms(r[SEEN], r[SCHEDULED])) for r in seen]
        done = [r[SEEN] for r in seen]
    result.update(usage)
    result["cpu_ms_per_unit"] = per_unit_ms(usage, len(done))  # per message, or per ack
    if result.get("embedded"):
        # the embedder's CPU over the messages it embedded in the window (it may lag behind)
        result["embedder_cpu_ms_per_embedded"] = {
            group: round(1000 * seconds / result["embedded"], 2)
            for group, seconds in (usage.get("cpu_seconds") or {}).items()
            if "embeddings" in group
        }
    series = {
        "latency": windows(latency),
        "sent": counts_per_window(r[SENT] for r in rows),
        "done": counts_per_window(done),
        "backlog": step.get("backlog", []),
    }
    return result, series


def embedding_lag(backlog: list[list[float]]) -> dict[str, Any]:
    """The embedding queue over a step (``BacklogPoller``): its largest and last size, and the
    messages taken off it in the window (embedded, or too short to be). The embedder runs
    behind the pipeline: on a saturated machine it falls back, and CPU-ms per *delivered*
    message then leaves out the work it does after the window."""
    points = [b for b in backlog if len(b) >= 5]
    if not points:
        return {}
    return {
        "max_embedding_backlog": max(b[3] for b in points),
        "embedding_backlog_end": points[-1][3],
        "embedded": points[-1][4] - points[0][4],
    }


def analyse_steps(
    raw: dict[str, Any], usage: dict[str, Any], *, e2e: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each webhook step's numbers and series, by step name."""
    results, series = {}, {}
    for step in raw["steps"]:
        name = step["name"]
        results[name], series[name] = deliveries(step, usage.get(name, {}), e2e=e2e)
    return results, series


# --- webhook-ack -------------------------------------------------------------------------------


def webhook_ack(ctx: Context) -> dict[str, Any]:
    """Signed Cloud deliveries at each rate to zapflow's webhook (the API alone, no worker: the
    acknowledgement path, the inbox filling up as it would while the worker is behind), then to
    the API floor's (same INSERT + NOTIFY, bare app); with 1 API process, then N."""
    steps = ctx.options.steps([100, 250, 500, 1000, 2000], 30)
    counts, skipped = floors.api_process_counts(ctx.options.api_processes)

    def scenario(bench: BenchStack) -> dict[str, Any]:
        results: dict[str, Any] = {}
        series: dict[str, Any] = {}
        skipped_steps: dict[str, list[str]] = {}
        for n in counts:
            suffix = "" if n == 1 else f" x{n}"
            bench.start_api(floors.api_argv(n))
            to = tenant(bench, f"Bench webhook-ack{suffix}")
            floor_url = floors.start_api_floor(bench, to.company_id, to.instance_id, APP_SECRET, n)
            urls = {
                "zapflow": to.webhook_url,
                "floor": floor_url + urlsplit(to.webhook_url).path,
            }
            for variant, url in urls.items():
                plan = webhook_plan(bench, to, steps, sse=False, customer_base=5511970000000,
                                    webhook_url=url)  # fmt: skip
                raw, usage = ctx.load(bench, plan, f"webhook-ack {variant}{suffix}")
                bench.check_processes()
                key = variant + suffix
                results[key], series[key] = analyse_steps(raw, usage, e2e=False)
                skipped_steps[key] = raw["skipped"]
            floors.api_ratios(results["zapflow" + suffix], results["floor" + suffix],
                              "ack_ms", "achieved_rate")  # fmt: skip
            bench.stop_process(floors.API_FLOOR)
            bench.stop_process("api")
        settings = {
            "steps": steps,
            "customers": CUSTOMERS,
            "api_processes": counts,
            "api_processes_skipped": skipped,
            "processes": "api only (no worker); then the API floor",
            "request": "POST /webhooks/cloud/{token}, one signed text each",
        }
        runs = {key: {"skipped": names} for key, names in skipped_steps.items()}
        return {**api_only(bench, settings, results, series), "runs": runs}

    return running(BenchStack(), scenario)


# --- pipeline ----------------------------------------------------------------------------------


class Profiler:
    """py-spy on the API and the worker once, when the step ``at`` starts, or earlier when a
    step has been draining for SATURATED_DRAIN_S (that rate is already more than zapflow takes,
    and ``at`` may never run)."""

    SATURATED_DRAIN_S = 10.0

    def __init__(self, bench: BenchStack, at: str, seconds: float, folder: Path) -> None:
        self.bench, self.at, self.seconds, self.folder = bench, at, seconds, folder
        self.running: dict[str, Any] = {}
        self.step = self.when = ""
        self.draining_since: dict[str, float] = {}

    def on_update(self, update: dict[str, Any]) -> None:
        step = update.get("step", "")
        if self.running:
            return
        if step == self.at:
            self.start(step, f"the {step} step")
        elif update.get("phase") == "draining":
            since = self.draining_since.setdefault(step, time.monotonic())
            if time.monotonic() - since >= self.SATURATED_DRAIN_S:
                self.start(step, f"the drain after the {step} step (a rate not sustained)")

    def start(self, step: str, when: str) -> None:
        self.step, self.when = step, when
        for name, managed in self.bench.children.items():
            child = managed.process
            if child is not None and (name == "api" or name.startswith("worker")):
                out = self.folder / f"{name}.txt"
                self.running[name] = (profile.start(child.pid, self.seconds, out), out)

    def summary(self) -> dict[str, Any] | None:
        if not self.running:
            return None
        found = {name: profile.finish(p, out) for name, (p, out) in self.running.items()}
        return {
            "step": self.step,
            "when": self.when,
            "seconds": self.seconds,
            "tool": f"py-spy record --nonblocking --rate {profile.SAMPLE_RATE}",
            **found,
        }


def pipeline_variant(
    ctx: Context,
    bench: BenchStack,
    variant: str,
    steps: list[tuple[float, float]],
    profiler: Profiler | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One variant's steps: (results by step, series by step, SSE reconnects and the steps
    skipped because a lower rate was not sustained)."""
    if variant == floors.WORK_FLOOR:
        raw, usage = work_floor_load(ctx, bench, steps)
    elif variant.startswith("floor"):
        plan: dict[str, Any] = {
            "mode": "floor",
            "temporal_address": bench.stack.settings_env()["ZAPFLOW_TEMPORAL_ADDRESS"],
            "temporal_namespace": "default",
            "conversations": CUSTOMERS,
            "drain_timeout": DRAIN_TIMEOUT,
            "steps": [
                {
                    "name": f"{rate:g}/s",
                    "rate": rate,
                    "duration": duration,
                    "start": variant == "floor",
                }
                for rate, duration in steps
            ],
        }
        if variant == "floor-signal":  # the workflows must be open: one message each first
            plan["steps"].insert(0, {"name": "open", "rate": 100.0,
                                     "duration": CUSTOMERS / 100, "start": True})  # fmt: skip
        raw, usage = ctx.load(bench, plan, f"pipeline {variant}", group=floors.TEMPORAL_FLOOR)
        raw["steps"] = [step for step in raw["steps"] if step["name"] != "open"]
    else:
        to = tenant(bench, f"Bench pipeline {variant}")
        if variant == AI_VARIANT:
            answering_late(bench, to)
        url = None
        if variant == "direct":
            port = free_port()
            argv = [sys.executable, "-m", "zapflow.bench.direct", str(port), to.company_id,
                    to.instance_id, APP_SECRET]  # fmt: skip
            bench.start("direct", argv, ready_url=f"http://127.0.0.1:{port}/readyz")
            url = f"http://127.0.0.1:{port}{urlsplit(to.webhook_url).path}"
        base = {"inbox": 5511960000000, AI_VARIANT: 5511970000000}.get(variant, 5511950000000)
        plan = webhook_plan(bench, to, steps, sse=True, customer_base=base, webhook_url=url)
        raw, usage = ctx.load(
            bench, plan, f"pipeline {variant}", profiler.on_update if profiler else None
        )
    if variant == AI_VARIANT:  # the workers as the other variants have them
        bench.restart_workers(bench.worker_roles)
    bench.check_processes()
    results, series = analyse_steps(raw, usage, e2e=True)
    return results, series, {"sse_reconnects": raw["sse_reconnects"], "skipped": raw["skipped"]}


def answering_late(bench: BenchStack, to: Tenant) -> None:
    """The ``inbox-ai`` variant's set-up: the workers restarted with a model provider (a closed
    loopback port: never called within the run), and ``to``'s AI agent on, answering
    ``AI_REPLY_DELAY`` seconds after a customer's last message, so every message needs its
    conversation's workflow (the signal, the debounce timer) as for a tenant whose bot answers."""
    bench.restart_workers(bench.worker_roles, {"ZAPFLOW_AI_BASE_URL": AI_UNUSED_URL})
    response = httpx.patch(
        f"{bench.base_url}/api/v1/company",
        headers={"Authorization": f"Bearer {to.api_key}"},
        json={"ai_prompt": "Você atende a loja.",
              "ai_settings": {"enabled": True, "reply_delay_seconds": AI_REPLY_DELAY}},
        timeout=30,
    )  # fmt: skip
    if response.status_code != 200:
        raise BenchError(f"turning the AI agent on: {response.status_code} {response.text}")


def work_floor_load(
    ctx: Context, bench: BenchStack, steps: list[tuple[float, float]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline's load on the same-work floor (bench/work_floor.py), its own tenant's
    deliveries to its webhook, e2e to its stream; its processes stopped afterwards."""
    to = tenant(bench, f"Bench pipeline {floors.WORK_FLOOR}")
    base_url = floors.start_work_floor(bench, to.company_id, to.instance_id, APP_SECRET,
                                       to.api_key)  # fmt: skip
    try:
        url = base_url + urlsplit(to.webhook_url).path
        plan = webhook_plan(bench, to, steps, sse=True, customer_base=5511930000000,
                            webhook_url=url)  # fmt: skip
        plan.update(base_url=base_url, table_prefix=work_floor.PREFIX)
        raw, usage = ctx.load(bench, plan, f"pipeline {floors.WORK_FLOOR}")
        bench.check_processes()
    finally:
        floors.stop_work_floor(bench)
    return raw, usage


def pipeline(ctx: Context) -> dict[str, Any]:
    """On one stack: the Temporal floor at the pipeline's rates over as many conversations
    (signal-with-start, then plain signals), then zapflow's inbound traffic over 1,000
    conversations, webhook → SSE ``message.created``; on request the bench-only webhook that
    signals Temporal directly (``direct``: no inbox)."""
    o = ctx.options
    steps = o.steps([20, 40, 80], 60)
    profile_at = "80/s" if any(rate == 80 for rate, _ in steps) else f"{steps[-1][0]:g}/s"

    def scenario(bench: BenchStack) -> dict[str, Any]:
        roles = o.worker_roles or floors.dev_worker_roles()
        bench.start_workers(roles)
        bench.start_api()
        results, series, runs = {}, {}, {}
        found = None
        folder = o.output_dir / "profiles"  # py-spy's collapsed stacks, kept for flame graphs
        folder.mkdir(parents=True, exist_ok=True)
        profiler = Profiler(bench, profile_at, PROFILE_SECONDS, folder) if o.profile else None
        for variant in o.pipeline_variants:
            watched = profiler if variant == "inbox" else None
            results[variant], series[variant], runs[variant] = pipeline_variant(
                ctx, bench, variant, steps, watched
            )
        found = profiler.summary() if profiler else None
        floors.pipeline_ratios(results)
        return {
            "settings": {
                "steps": steps,
                "customers": CUSTOMERS,
                "drain_timeout_s": DRAIN_TIMEOUT,
                "variants": o.pipeline_variants,
                "processes": ", ".join(bench.processes()),
                "worker_roles": roles,
            },
            "results": results,
            "memory": memory(step for steps in results.values() for step in steps.values()),
            "series": series,
            "runs": runs,
            "profile": found,
            "log_lines": {name: bench.log_lines(name) for name in bench.children},
        }

    return running(BenchStack(), scenario)


# --- crm-read ----------------------------------------------------------------------------------


def requests(step: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    """An HTTP step's numbers (records: route, due, ms, status, error; due from the first)."""
    records = step["records"]
    ok = [r for r in records if not r[4]]
    elapsed = max((r[1] + r[2] / 1000 for r in records), default=0.0)  # to the last answer
    answered = step["total"] - (len(records) - len(ok))  # warm-up included: the window holds it
    per_request = per_unit_ms(usage, answered)
    return {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "error_samples": dict(Counter(r[4] for r in records if r[4]).most_common(3)),
        "rps": round(len(ok) / elapsed, 1) if elapsed else None,
        "latency_ms": summarize(r[2] for r in ok),
        "routes": {
            route: summarize(r[2] for r in ok if r[0] == route)
            for route in sorted({r[0] for r in records})
        },
        **usage,
        "cpu_ms_per_unit": per_request,
    }


def crm_steps(duration: float, rates: list[float]) -> list[dict[str, Any]]:
    """The mix at saturation (closed loop), each route alone at saturation, the mix at rates."""
    steps: list[dict[str, Any]] = [
        {"name": "saturation", "concurrency": 16, "warmup": 3, "duration": duration}
    ]
    steps += [
        {"name": route, "route": route, "concurrency": 8, "warmup": 2, "duration": duration / 2}
        for _, route in MIX
    ]
    return steps + [{"name": f"{rate:g}/s", "rate": rate, "duration": duration} for rate in rates]


def raise_rate_limit(bench: BenchStack, api_key: str) -> None:
    """As a user would: the company's own limit (``settings.rate_limits``) raised through the
    API, so the limiter, its Redis round trip and its headers still run on every request."""
    response = httpx.patch(
        f"{bench.base_url}/api/v1/company",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"settings": {"rate_limits": {"default": RATE_LIMIT}}},
        timeout=30,
    )
    if response.status_code != 200:
        raise BenchError(f"raising the rate limit: {response.status_code} {response.text[:300]}")


def crm_read(ctx: Context) -> dict[str, Any]:
    """The CRM read mix on seed-demo data, as an agent's browser asks for it (API key, the
    company's raised rate limit, gzip), against zapflow and then the API floor: the mix and each
    route at saturation (closed loop), then the mix open loop at rates; 1 API process, then N."""
    o = ctx.options
    steps = crm_steps(o.duration or 20, o.rates or [500, 1000])
    counts, skipped = floors.api_process_counts(o.api_processes)

    def scenario(bench: BenchStack) -> dict[str, Any]:
        t = time.monotonic()
        seeded = bench.run_cli("seed-demo", "--contacts", str(o.contacts), "--messages",
                               str(o.messages), "--seed", str(SEED), timeout=3600)  # fmt: skip
        seed_s = round(time.monotonic() - t, 1)
        results: dict[str, Any] = {}
        series: dict[str, Any] = {}
        targets = None
        for n in counts:
            suffix = "" if n == 1 else f" x{n}"
            bench.start_api(floors.api_argv(n))
            if targets is None:
                raise_rate_limit(bench, seeded["api_key"])
                targets = pick_targets(bench, seeded["api_key"], seeded["company_id"], SEED)
            floor_url = floors.start_api_floor(bench, seeded["company_id"], None, "", n)
            for variant, base_url in (("zapflow", bench.base_url), ("floor", floor_url)):
                plan = {"mode": "http", "base_url": base_url, "api_key": seeded["api_key"],
                        "targets": targets.__dict__, "seed": SEED, "steps": steps}  # fmt: skip
                raw, usage = ctx.load(bench, plan, f"crm-read {variant}{suffix}")
                bench.check_processes()
                key = variant + suffix
                results[key] = {
                    s["name"]: requests(s, usage.get(s["name"], {})) for s in raw["steps"]
                }
                series[key] = {
                    s["name"]: {
                        "latency": windows((r[1], r[2]) for r in s["records"] if not r[4]),
                        "done": counts_per_window(r[1] + r[2] / 1000 for r in s["records"]),
                    }
                    for s in raw["steps"]
                }
            floors.api_ratios(results["zapflow" + suffix], results["floor" + suffix],
                              "latency_ms", "rps")  # fmt: skip
            bench.stop_process(floors.API_FLOOR)
            bench.stop_process("api")
        settings = {
            "contacts": o.contacts,
            "messages": o.messages,
            "seed_seconds": seed_s,
            "steps": steps,
            "mix_percent": {route: w for w, route in MIX},
            "targets": targets.public() if targets else None,
            "company_rate_limit_per_minute": RATE_LIMIT,
            "accept_encoding": ACCEPT_ENCODING,
            "api_processes": counts,
            "api_processes_skipped": skipped,
            "processes": "api only (nothing is written); then the API floor",
        }
        return api_only(bench, settings, results, series)

    return running(BenchStack(), scenario)


# --- follow-up timers --------------------------------------------------------------------------

FOLLOWUPS = 1000
FOLLOWUP_CONVERSATIONS = 200
FOLLOWUP_LEAD_S = 45.0  # time to create them all before the first is due
FOLLOWUP_WAIT_S = 90.0  # after the last is due, before an unsent one counts as missing


def followups_available() -> bool:
    return importlib.util.find_spec("zapflow.api.routes.followups") is not None


def followup_timers(ctx: Context) -> dict[str, Any]:
    """1,000 follow-ups due within the same minute over 200 conversations; lateness = when the
    provider received the message - when it was due."""
    if not followups_available():
        return {"status": "not available", "reason": "no follow-up route (issue 5) in this tree"}
    spread = min(60.0, ctx.options.duration or 60.0)
    receiver_port = free_port()
    provider = f"http://127.0.0.1:{receiver_port}/v21.0"

    def scenario(bench: BenchStack) -> dict[str, Any]:
        bench.start("worker", env={"ZAPFLOW_CLOUD_API_BASE_URL": provider})
        bench.start_api()
        to = tenant(bench, "Bench follow-ups")
        company_id, key = to.company_id, to.api_key
        steps = [(50.0, FOLLOWUP_CONVERSATIONS / 50.0)]
        plan = webhook_plan(
            bench,
            to,
            steps,
            sse=True,
            customer_base=5511940000000,
            customers=FOLLOWUP_CONVERSATIONS,
        )
        ctx.load(bench, plan, "follow-ups: conversations")
        ids = bench.psql(f"SELECT id FROM conversations WHERE company_id = '{company_id}'").split()
        first_due = datetime.now(UTC) + timedelta(seconds=FOLLOWUP_LEAD_S)
        due = [first_due + timedelta(seconds=spread * i / FOLLOWUPS) for i in range(FOLLOWUPS)]
        wanted = [
            {
                "conversation_id": ids[i % len(ids)],
                "at": at.isoformat(),
                "text": f"bench follow-up {i:04d}",
            }
            for i, at in enumerate(due)
        ]
        plan = {
            "mode": "followups",
            "base_url": bench.base_url,
            "api_key": key,
            "receiver_port": receiver_port,
            "followups": wanted,
            "wait_until": due[-1].timestamp() + FOLLOWUP_WAIT_S,
        }
        raw, usage = ctx.load(bench, plan, "follow-ups")
        bench.check_processes()
        return followup_result(bench, company_id, wanted, raw, usage.get("followups", {}), spread)

    return running(BenchStack(), scenario)


def followup_result(
    bench: BenchStack,
    company_id: str,
    wanted: list[dict[str, Any]],
    raw: dict[str, Any],
    usage: dict[str, Any],
    spread: float,
) -> dict[str, Any]:
    due = {w["text"]: datetime.fromisoformat(w["at"]).timestamp() for w in wanted}
    created_ok = [text for text, status, *_ in raw["created"] if status == 201]
    last_created = max((at for *_, at in raw["created"]), default=None)
    received = raw["received"]
    lateness = [(due[t], ms(received[t], due[t])) for t in created_ok if t in received]
    stored = bench.psql(
        "SELECT extract(epoch FROM sent_at - scheduled_for) * 1000 FROM followup_queue "
        f"WHERE company_id = '{company_id}' AND sent_at IS NOT NULL"
    ).split()
    first = min(due.values())
    return {
        "settings": {
            "followups": FOLLOWUPS,
            "conversations": FOLLOWUP_CONVERSATIONS,
            "due_within_s": spread,
            "lead_s": FOLLOWUP_LEAD_S,
            "processes": "api + worker; the Cloud API played by the load generator",
        },
        "results": {
            "created": len(created_ok),
            "create_errors": dict(
                Counter(
                    f"{s} {body[:80]}" for _, s, body, _ in raw["created"] if s != 201
                ).most_common(3)
            ),
            "last_created_before_first_due_s": (
                None if last_created is None else round(first - last_created, 1)
            ),
            "received": len(lateness),
            "missing": len(created_ok) - len(lateness),
            "lateness_ms": summarize(v for _, v in lateness),
            "sent_at_minus_scheduled_for_ms": summarize(float(v) for v in stored),
            **usage,
        },
        "series": {"lateness": {"latency": windows((t - first, v) for t, v in lateness)}},
    }


# --- search ------------------------------------------------------------------------------------

SEARCH_SCRIPT = REPO / "bench" / "embeddings_search.py"
SEARCH_MESSAGES = 100_000
SEARCH_CONTACTS = 10_000
SEARCH_QUERIES = 50  # per mode, sequential (the script's default is 200)
SEARCH_SAMPLE = 300  # texts per batch size for the embedding throughput (its default is 2,000)


def search(ctx: Context) -> dict[str, Any]:
    """bench/embeddings_search.py (local embedding throughput, search latency by mode, recall@10
    of the HNSW index against exact search) as a subprocess on its own fresh stack, when it
    exists; its JSON is kept whole (``raw``) and summarized against the goals."""
    if not SEARCH_SCRIPT.exists():
        return {"status": "not available", "reason": f"bench/{SEARCH_SCRIPT.name} not in this tree"}
    o = ctx.options
    messages, contacts = min(o.messages, SEARCH_MESSAGES), min(o.contacts, SEARCH_CONTACTS)
    argv = [
        sys.executable,
        str(SEARCH_SCRIPT),
        "--messages",
        str(messages),
        "--contacts",
        str(contacts),
        "--queries",
        str(SEARCH_QUERIES),
        "--sample",
        str(SEARCH_SAMPLE),
    ]
    started = time.time()
    timeout = ctx.seconds_left()
    try:
        done = subprocess.run(argv, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"stopped after {timeout:.0f} s, the rest of the run's budget") from None
    written = [
        p
        for p in (REPO / "bench" / "results").glob("embeddings_search*.json")
        if p.stat().st_mtime >= started
    ]
    if done.returncode != 0 or not written:
        raise BenchError(f"{SEARCH_SCRIPT.name} exited with {done.returncode}, no result")
    raw = orjson.loads(max(written, key=lambda p: p.stat().st_mtime).read_bytes())
    return {
        "settings": {"command": " ".join(["bench/" + SEARCH_SCRIPT.name, *argv[2:]])},
        "summary": search_summary(raw, load_settings().search_ef_search),
        "raw": {k: v for k, v in raw.items() if k != "plan"},
        "plan": raw.get("plan"),
    }


def recall_at(by_setting: dict[str, float], ef_search: int) -> float | None:
    """Recall at zapflow's own settings: this ``ef_search``, and the iterative scan
    services/search.py turns on (``relaxed_order``) when the script measured several."""
    found = [(k, v) for k, v in by_setting.items() if k.split()[0] == f"ef_search={ef_search}"]
    preferred = [v for k, v in found if "relaxed_order" in k]
    return next(iter(preferred or [v for _, v in found]), None)


def search_summary(raw: dict[str, Any], ef_search: int) -> dict[str, Any]:
    """The figures the goals speak of, from the script's result."""
    latency = raw.get("latency_ms", {})
    best: dict[str, Any] = max(
        raw.get("throughput", []), key=lambda row: row["per_second"], default={}
    )
    return {
        **{f"{mode}_ms": latency.get(mode) for mode in ("semantic", "hybrid", "keyword")},
        "ef_search": ef_search,
        "recall_at_10": recall_at(raw.get("recall_at_10", {}), ef_search),
        "recall_at_10_by_ef_search": raw.get("recall_at_10"),
        "embeddings_per_second": best.get("per_second"),
        "embedding_batch": best.get("batch"),
        "embedded_messages": raw.get("dataset", {}).get("embedded"),
        "plan_uses_hnsw": raw.get("plan_uses_hnsw"),
    }


SCENARIOS: dict[str, ScenarioFn] = {
    "webhook-ack": webhook_ack,
    "pipeline": pipeline,
    "crm-read": crm_read,
    "followup-timers": followup_timers,
    "search": search,
}
