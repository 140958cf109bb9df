"""CRM read routes: throughput and latency of the API's main lists on a seeded dataset.

Starts its own embedded stack (durable, headless Temporal) in a temporary folder on free ports,
migrates, loads ``zapflow seed-demo --contacts N --messages M`` (default 100k / 1M), then runs
``zapflow api`` alone (no worker: nothing is written) with the rate limit raised so it never
refuses the benchmark. It picks its targets from the API and the database (inbox cursors, the
longest conversation and a random sample, a sample of contacts, the funnel with the most deals)
and, for each scenario, runs a closed loop: ``--concurrency`` clients (one keep-alive
``httpx.AsyncClient`` each) send one request after another for ``--duration`` seconds after
``--warmup`` seconds not counted. Per scenario: requests, errors, req/s, latency p50/p95/p99/max,
and CPU of the API, Postgres and the rest of the machine, the API's peak RSS. Prints a table and
writes JSON to bench/results/.

    .venv/bin/python bench/crm_read.py                       # 100k contacts, 1M messages
    .venv/bin/python bench/crm_read.py --contacts 5000 --messages 50000 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psutil
from _harness import (
    RESULTS,
    BenchError,
    BenchStack,
    git_state,
    install_signal_handlers,
    load_average,
    machine,
    run_async,
    summarize,
    write_json,
)
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

DEFAULT_OUTPUT = RESULTS / "crm_read.json"
RATE_LIMIT = 100_000_000  # per minute: the limiter still runs on every request, never refuses
GOAL_RPS = 1000.0  # DESIGN.md: CRM API ≥ 1,000 req/s, p99 ≤ 50 ms on 1M messages
GOAL_P99_MS = 50.0
INBOX_PAGES = 20
PAGE = 50
CONTACT_PAGE = 20
CONTACT_PAGES = 100  # `contacts pages` asks for a random page among the first this many
SEED_TIMEOUT = 3600.0
LOAD_GENERATOR = "load_generator"  # this process
SAMPLE_EVERY = 0.25  # seconds between RSS samples and progress updates
MIX = (  # (weight %, scenario whose requests it draws)
    (30, "inbox"),
    (30, "messages random"),
    (10, "contacts search"),
    (20, "contact detail"),
    (10, "funnel board"),
)

console = Console(stderr=True)


class Call(NamedTuple):
    route: str  # the scenario it belongs to (the mix reports per route)
    path: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str  # what it requests, for the table and the JSON
    pick: Callable[[random.Random], Call]


class Record(NamedTuple):
    route: str
    started: float  # perf_counter
    ms: float
    status: int | None  # None: no response (exception)
    error: str | None


@dataclass(frozen=True)
class Targets:
    company_id: str
    inbox_cursors: list[str]  # next_cursor of pages 1..19: they fetch pages 2..20
    longest: dict[str, Any]  # id, message_count
    conversations: list[str]  # random sample (at least one message each)
    contacts: list[str]
    contacts_total: int
    fragments: dict[str, int]  # name fragment -> contacts matching
    funnel: dict[str, Any]  # id, name, open deals

    def public(self) -> dict[str, Any]:
        return {
            "company_id": self.company_id,
            "inbox_pages": 1 + len(self.inbox_cursors),
            "longest_conversation": self.longest,
            "random_conversations": len(self.conversations),
            "contact_sample": len(self.contacts),
            "contacts_total": self.contacts_total,
            "search_fragments": self.fragments,
            "funnel": self.funnel,
        }


# --- targets ------------------------------------------------------------------------------------


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    if response.status_code != 200:
        raise BenchError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    return response.json()


def pick_targets(
    bench: BenchStack, api_key: str, company_id: str, args: argparse.Namespace
) -> Targets:
    """What the scenarios ask for: from the API where an agent would find it, from SQL for the
    longest conversation and an unbiased sample of conversations."""
    rng = random.Random(args.seed)
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=bench.base_url, headers=auth, timeout=60) as client:
        cursors: list[str] = []
        page = get_json(client, "/api/v1/conversations", limit=PAGE)
        while page["next_cursor"] and len(cursors) < INBOX_PAGES - 1:
            cursors.append(page["next_cursor"])
            page = get_json(client, "/api/v1/conversations", limit=PAGE, cursor=cursors[-1])

        first = get_json(client, "/api/v1/contacts", limit=100)
        total = int(first["total"])
        contacts = [row["id"] for row in first["data"]]
        pages = max(1, -(-total // 100))
        for number in rng.sample(
            range(2, pages + 1), min(pages - 1, args.contact_sample // 100 - 1)
        ):
            contacts += [
                row["id"]
                for row in get_json(client, "/api/v1/contacts", limit=100, page=number)["data"]
            ]
        contacts = contacts[: args.contact_sample]

        fragments = {
            q: int(get_json(client, "/api/v1/contacts", q=q, limit=CONTACT_PAGE)["total"])
            for q in args.search
        }

        funnels = []
        for funnel in get_json(client, "/api/v1/funnels"):
            board = get_json(client, f"/api/v1/funnels/{funnel['id']}/board")
            deals = sum(stage["deal_count"] for stage in board["stages"])
            funnels.append({"id": funnel["id"], "name": funnel["name"], "open_deals": deals})
    if not funnels:
        raise BenchError("the seeded company has no funnel")
    if not contacts:
        raise BenchError("the seeded company has no contacts")

    row = bench.psql(
        f"SELECT id, message_count FROM conversations WHERE company_id = '{company_id}' "
        "ORDER BY message_count DESC, id LIMIT 1"
    ).strip()
    if not row:
        raise BenchError("the seeded company has no conversations")
    longest_id, message_count = row.split("|")
    sample = bench.psql(  # a fixed pseudo-random order: the same sample for the same data
        f"SELECT id FROM conversations WHERE company_id = '{company_id}' AND message_count > 0 "
        f"ORDER BY md5(id::text || '{args.seed}') LIMIT {args.random_conversations}"
    ).split()
    return Targets(
        company_id=company_id,
        inbox_cursors=cursors,
        longest={"id": longest_id, "message_count": int(message_count)},
        conversations=[conversation for conversation in sample if conversation],
        contacts=contacts,
        contacts_total=total,
        fragments=fragments,
        funnel=max(funnels, key=lambda f: f["open_deals"]),
    )


def scenarios(t: Targets) -> list[Scenario]:
    conversations = "/api/v1/conversations"
    longest = f"{conversations}/{t.longest['id']}/messages"
    board = f"/api/v1/funnels/{t.funnel['id']}/board"
    fragments = list(t.fragments)

    def inbox(_: random.Random) -> Call:
        return Call("inbox", conversations, {"limit": PAGE})

    def deep(rng: random.Random) -> Call:
        return Call(
            "inbox pages 2-20",
            conversations,
            {"limit": PAGE, "cursor": rng.choice(t.inbox_cursors)},
        )

    def messages_longest(_: random.Random) -> Call:
        return Call("messages longest", longest, {"limit": PAGE})

    def messages_random(rng: random.Random) -> Call:
        path = f"{conversations}/{rng.choice(t.conversations)}/messages"
        return Call("messages random", path, {"limit": PAGE})

    def search(rng: random.Random) -> Call:
        return Call(
            "contacts search",
            "/api/v1/contacts",
            {"q": rng.choice(fragments), "limit": CONTACT_PAGE},
        )

    def contact_pages(rng: random.Random) -> Call:
        return Call(
            "contacts pages",
            "/api/v1/contacts",
            {"limit": CONTACT_PAGE, "page": rng.randint(1, CONTACT_PAGES)},
        )

    def detail(rng: random.Random) -> Call:
        return Call("contact detail", f"/api/v1/contacts/{rng.choice(t.contacts)}", {})

    def funnel_board(_: random.Random) -> Call:
        return Call("funnel board", board, {})

    found = [
        Scenario("inbox", f"GET /conversations?limit={PAGE}", inbox),
        Scenario("inbox pages 2-20", f"GET /conversations?limit={PAGE}&cursor=…", deep),
        Scenario(
            "messages longest",
            f"GET /conversations/{{longest}}/messages?limit={PAGE}",
            messages_longest,
        ),
        Scenario(
            "messages random",
            f"GET /conversations/{{random}}/messages?limit={PAGE}",
            messages_random,
        ),
        Scenario(
            "contacts search", f"GET /contacts?q={'|'.join(fragments)}&limit={CONTACT_PAGE}", search
        ),
        Scenario(
            "contacts pages",
            f"GET /contacts?limit={CONTACT_PAGE}&page=1..{CONTACT_PAGES}",
            contact_pages,
        ),
        Scenario("contact detail", "GET /contacts/{random id}", detail),
        Scenario("funnel board", "GET /funnels/{id}/board", funnel_board),
    ]
    if not t.inbox_cursors:
        found = [s for s in found if s.name != "inbox pages 2-20"]
    if not t.conversations:
        found = [s for s in found if s.name != "messages random"]
    by_name = {s.name: s for s in found}
    parts = [(weight, by_name[name]) for weight, name in MIX if name in by_name]
    weights = [weight for weight, _ in parts]
    picks = [scenario.pick for _, scenario in parts]

    def mix(rng: random.Random) -> Call:
        return rng.choices(picks, weights)[0](rng)

    title = " · ".join(f"{name} {weight}%" for weight, name in MIX)
    return [*found, Scenario("mix", title, mix)]


# --- resources ----------------------------------------------------------------------------------


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class Usage:
    """CPU used by each group of processes over a window (in % of one core: 200 is two cores
    busy), the machine's busy CPU, and the API's peak RSS sampled during the window."""

    def __init__(self, groups: dict[str, list[psutil.Process]], api: psutil.Process) -> None:
        self.groups = groups
        self.api = api
        self.start_cpu: dict[str, dict[int, float]] = {}
        self.started = 0.0
        self.machine_busy = 0.0
        self.peak_rss = 0

    def _members(self, group: str) -> list[psutil.Process]:
        members: list[psutil.Process] = []
        for process in self.groups[group]:
            members.append(process)
            if group == LOAD_GENERATOR:  # its children are the stack and the API: counted apart
                continue
            with contextlib.suppress(psutil.Error):  # Postgres backends come and go
                members += process.children(recursive=True)
        return members

    def _cpu(self) -> dict[str, dict[int, float]]:
        found: dict[str, dict[int, float]] = {}
        for group in self.groups:
            found[group] = {}
            for process in self._members(group):
                with contextlib.suppress(psutil.Error):
                    found[group][process.pid] = cpu_seconds(process)
        return found

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    def start(self) -> None:
        self.start_cpu = self._cpu()
        self.machine_busy = self._busy()
        self.started = time.perf_counter()
        self.peak_rss = 0
        self.sample()

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, self.api.memory_info().rss)

    def stop(self) -> dict[str, Any]:
        self.sample()
        wall = time.perf_counter() - self.started
        end = self._cpu()
        percent: dict[str, float] = {}
        for group, pids in end.items():
            before = self.start_cpu.get(group, {})
            used = sum(seconds - before.get(pid, 0.0) for pid, seconds in pids.items())
            percent[group] = round(100 * used / wall, 1)
        busy = round(100 * (self._busy() - self.machine_busy) / wall, 1)
        percent["machine_busy"] = busy
        percent["other"] = round(max(0.0, busy - sum(percent[g] for g in self.groups)), 1)
        return {"cpu_percent": percent, "api_peak_rss_mib": round(self.peak_rss / 2**20, 1)}


def process_groups(bench: BenchStack) -> tuple[dict[str, list[psutil.Process]], psutil.Process]:
    def of(process: subprocess.Popen[bytes] | None) -> list[psutil.Process]:
        return [psutil.Process(process.pid)] if process is not None else []

    api = next(child for child in bench.children if child.name == "api")
    groups = {
        "api": of(api.process),
        "postgres": of(bench.stack.postgres.process),
        "redis": of(bench.stack.redis.process),
        "temporal": of(bench.stack.temporal.process),
        LOAD_GENERATOR: [psutil.Process(os.getpid())],
    }
    return groups, groups["api"][0]


# --- load ---------------------------------------------------------------------------------------


async def client_loop(
    client: httpx.AsyncClient,
    scenario: Scenario,
    rng: random.Random,
    measure_from: float,
    stop_at: float,
    records: list[Record],
    counter: list[int],
) -> None:
    """One closed-loop client: the next request leaves when the previous answer is in."""
    while True:
        call = scenario.pick(rng)
        started = time.perf_counter()
        if started >= stop_at:
            return
        status: int | None = None
        error: str | None = None
        try:
            response = await client.get(call.path, params=call.params)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        done = time.perf_counter()
        counter[0] += 1
        if started >= measure_from:
            records.append(Record(call.route, started, (done - started) * 1000, status, error))


async def cache_lookups(base_url: httpx.URL) -> dict[str, float]:
    """zapflow_cache_lookups_total from /metrics, as ``"<cache> <outcome>": count``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("zapflow_cache_lookups_total{"):
            labels, _, value = line.partition("} ")
            pairs = dict(part.split("=", 1) for part in labels.split("{", 1)[1].split(","))
            key = f"{pairs['cache'].strip(chr(34))} {pairs['outcome'].strip(chr(34))}"
            found[key] = float(value)
    return found


async def run_scenario(
    scenario: Scenario,
    base_url: str,
    api_key: str,
    args: argparse.Namespace,
    usage: Usage,
    progress: Progress,
    task: TaskID,
) -> dict[str, Any]:
    records: list[Record] = []
    counter = [0]  # every answer, warm-up included (progress only)
    auth = {"Authorization": f"Bearer {api_key}"}
    # one connection per client; idle less than uvicorn's 5 s keep-alive between scenarios
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=2)
    clients = [
        httpx.AsyncClient(base_url=base_url, headers=auth, limits=limits, timeout=30)
        for _ in range(args.concurrency)
    ]
    load_at_start = load_average()
    begin = time.perf_counter()
    measure_from = begin + args.warmup
    stop_at = measure_from + args.duration
    try:
        loops = [
            asyncio.create_task(
                client_loop(
                    client,
                    scenario,
                    random.Random(f"{args.seed}/{scenario.name}/{i}"),
                    measure_from,
                    stop_at,
                    records,
                    counter,
                )
            )
            for i, client in enumerate(clients)
        ]
        measuring = False
        while not all(loop.done() for loop in loops):
            now = time.perf_counter()
            if not measuring and now >= measure_from:
                usage.start()
                measuring = True
                cache_before = await cache_lookups(clients[0].base_url)
            elif measuring:
                usage.sample()
            phase = "measuring" if measuring else "warm-up"
            progress.update(
                task,
                completed=min(now - begin, args.warmup + args.duration),
                info=f"{phase} · {counter[0]:,} requests",
            )
            await asyncio.wait(loops, timeout=SAMPLE_EVERY)
        await asyncio.gather(*loops)
        if not measuring:  # a duration shorter than one sample period
            usage.start()
            cache_before = await cache_lookups(clients[0].base_url)
        used = usage.stop()
        cache_after = await cache_lookups(clients[0].base_url)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)
    result = analyse(records, measure_from)
    result.update(title=scenario.title, warmup_requests=counter[0] - len(records), **used)
    if result["requests"]:  # the API's CPU time per request: steadier than latency under noise
        api_ms = used["cpu_percent"]["api"] * 10 * result["elapsed_s"] / result["requests"]
        result["api_cpu_ms_per_request"] = round(api_ms, 2)
    result["load_average_at_start"] = load_at_start
    result["cache_lookups"] = {
        key: int(n - cache_before.get(key, 0))
        for key, n in sorted(cache_after.items())
        if n - cache_before.get(key, 0)
    }
    if scenario.name == "mix":
        routes: dict[str, list[Record]] = {}
        for record in records:
            routes.setdefault(record.route, []).append(record)
        result["routes"] = {
            route: analyse(rows, measure_from, elapsed=result["elapsed_s"])
            for route, rows in sorted(routes.items(), key=lambda item: -len(item[1]))
        }
    progress.update(
        task,
        completed=args.warmup + args.duration,
        info=f"{result['requests']:,} requests · {result['rps']:,.0f} req/s · "
        f"p99 {result['latency_ms']['p99'] or 0:.1f} ms · {result['errors']} errors",
    )
    return result


def analyse(
    records: list[Record], measure_from: float, elapsed: float | None = None
) -> dict[str, Any]:
    """Counts, throughput and nearest-rank latency of the measured requests."""
    errors = [r for r in records if r.error]
    if elapsed is None:  # from the window's start to the last answer
        last = max((r.started + r.ms / 1000 for r in records), default=measure_from)
        elapsed = max(last - measure_from, 1e-9)
    latencies = [r.ms for r in records]
    return {
        "requests": len(records),
        "errors": len(errors),
        "status_counts": dict(
            sorted(Counter(str(r.status) if r.status else "exception" for r in records).items())
        ),
        "error_samples": sorted({r.error for r in errors if r.error})[:5],
        "elapsed_s": round(elapsed, 3),
        "rps": round(len(records) / elapsed, 1),
        "latency_ms": {
            **summarize(latencies),
            "mean": round(statistics.fmean(latencies), 2) if latencies else None,
        },
    }


async def run_all(
    todo: list[Scenario], base_url: str, api_key: str, args: argparse.Namespace, usage: Usage
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(bar_width=24),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    live = console.is_terminal
    with Progress(*columns, console=console, disable=not live) as progress:
        for scenario in todo:
            total = args.warmup + args.duration
            task = progress.add_task(scenario.name, total=total, info="warm-up")
            if not live:
                print(
                    f"  {scenario.name}: {args.warmup:g} s warm-up + {args.duration:g} s ...",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
            result = await run_scenario(scenario, base_url, api_key, args, usage, progress, task)
            results[scenario.name] = result
            if not live:
                print(
                    f" {result['requests']:,} requests, {result['rps']:,.0f} req/s, "
                    f"p99 {result['latency_ms']['p99'] or 0:.1f} ms, {result['errors']} errors",
                    file=sys.stderr,
                    flush=True,
                )
    return results


# --- seeding and report -------------------------------------------------------------------------


def seed(bench: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """``zapflow seed-demo --json``: its progress bars go to our stderr, its JSON to us."""
    argv = [
        sys.executable,
        "-m",
        "zapflow.cli",
        "seed-demo",
        "--contacts",
        str(args.contacts),
        "--messages",
        str(args.messages),
        "--seed",
        str(args.seed),
        "--json",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=bench.env, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=SEED_TIMEOUT)
    except BaseException:  # Ctrl-C or the timeout: do not leave it loading
        process.kill()
        process.wait()
        raise
    if process.returncode != 0:
        raise BenchError(f"`zapflow seed-demo` failed ({process.returncode}): see above")
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    return summary


def dataset(bench: BenchStack) -> dict[str, Any]:
    rows = bench.psql(
        "SELECT relname, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables "
        "WHERE relname IN ('contacts', 'conversations', 'messages', 'deals') ORDER BY relname"
    )
    found = {}
    for line in rows.split():
        name, live, size = line.split("|")
        found[name] = {"rows": int(live), "total_mib": round(int(size) / 2**20, 1)}
    return found


def cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


COLUMNS = (  # latencies in ms; CPU in % of one core
    "scenario", "requests", "errors", "req/s", "p50", "p95", "p99", "max",
    "API CPU%", "API CPU ms/req", "API RSS MiB", "PG CPU%", "other CPU%",
)  # fmt: skip
TABLE_WIDTH = 140


def print_table(result: dict[str, Any]) -> None:
    p = result["parameters"]
    out = Console(width=max(TABLE_WIDTH, shutil.get_terminal_size().columns))
    table = Table(
        title=f"CRM read routes · {p['contacts']:,} contacts / {p['messages']:,} messages · "
        f"{p['concurrency']} clients · {p['duration_s']:g} s each (closed loop) · latency in ms",
        title_justify="left",
    )
    for name in COLUMNS:
        if name == "scenario":
            table.add_column(name, no_wrap=True)
        else:
            table.add_column(name, justify="right", max_width=8 if " " in name else None)

    def add(name: str, r: dict[str, Any], usage: dict[str, Any] | None) -> None:
        lat = r["latency_ms"]
        cpu = usage["cpu_percent"] if usage else {}
        table.add_row(
            name,
            f"{r['requests']:,}",
            str(r["errors"]),
            cell(r["rps"], 0),
            cell(lat["p50"]),
            cell(lat["p95"]),
            cell(lat["p99"]),
            cell(lat["max"]),
            cell(cpu.get("api"), 0),
            cell(usage.get("api_cpu_ms_per_request"), 2) if usage else "",
            cell(usage["api_peak_rss_mib"], 0) if usage else "",
            cell(cpu.get("postgres"), 0),
            cell(cpu.get("other"), 0),
        )

    for name, r in result["results"].items():
        add(name, r, r)
        for route, sub in r.get("routes", {}).items():
            add(f"  · {route}", sub, None)
    out.print(table)
    la = result["load_average"]
    out.print(
        f"load average (1/5/15 min): at start {la['at_start']}, before the load "
        f"{la['before_load']}, after {la['after']} · {result['machine']['cores']} cores",
        highlight=False,
    )
    goal = result["goal"]
    mix = result["results"].get("mix")
    if mix:
        verdict = "met" if goal["met_by_mix"] else "not met"
        out.print(
            f"goal ≥ {GOAL_RPS:,.0f} req/s with p99 ≤ {GOAL_P99_MS:g} ms (DESIGN.md): mix "
            f"{mix['rps']:,.0f} req/s, p99 {cell(mix['latency_ms']['p99'])} ms → {verdict}",
            highlight=False,
        )
    out.print(
        f"rate limit raised to {RATE_LIMIT:,}/min for the benchmark (default 1,200 per key and "
        "route group)",
        highlight=False,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the CRM API's main read routes (closed loop) on a seeded dataset, "
        "on a fresh embedded stack started just for this run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--contacts", type=int, default=100_000, help="contacts to seed")
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to seed")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop clients")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds/scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="uncounted seconds/scenario")
    parser.add_argument(
        "--search",
        type=lambda s: [q.strip() for q in s.split(",") if q.strip()],
        default=["silva", "maria", "santos"],
        help="name fragments for contact search, comma-separated (each request picks one)",
    )
    parser.add_argument(
        "--random-conversations",
        type=int,
        default=100,
        help="conversations sampled for `messages random`",
    )
    parser.add_argument(
        "--contact-sample", type=int, default=1000, help="contact ids sampled for `contact detail`"
    )
    parser.add_argument(
        "--scenarios",
        type=lambda s: [x.strip() for x in s.split(",")],
        help="only these (comma-separated names, e.g. inbox,mix)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed-demo's and the clients' seed")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON result file")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary data and logs folder"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="after the load, print bench/explain_plans.py's plans for the seeded company",
    )
    args = parser.parse_args(argv)
    if args.contacts < 1 or args.messages < 1 or args.concurrency < 1 or args.duration <= 0:
        parser.error("--contacts, --messages, --concurrency and --duration must be positive")
    if args.warmup < 0 or not args.search:
        parser.error("--warmup cannot be negative and --search needs a fragment")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    load_at_start = load_average()
    bench = BenchStack(["api"], {"ZAPFLOW_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT)})
    started = time.monotonic()
    try:
        bench.start_stack()
        print(f"seeding {args.contacts:,} contacts and {args.messages:,} messages", flush=True)
        seeded = seed(bench, args)
        print(f"seeded in {seeded['seconds']} s; starting the API", flush=True)
        code = git_state()  # what the API imports as it starts
        bench.start_processes()
        targets = pick_targets(bench, seeded["api_key"], seeded["company_id"], args)
        todo = scenarios(targets)
        if args.scenarios:
            unknown = set(args.scenarios) - {s.name for s in todo}
            if unknown:
                raise BenchError(f"unknown scenarios {sorted(unknown)}: {[s.name for s in todo]}")
            todo = [s for s in todo if s.name in args.scenarios]
        print(
            f"ready in {time.monotonic() - started:.1f} s; {len(todo)} scenarios of "
            f"{args.warmup:g} + {args.duration:g} s, {args.concurrency} clients",
            flush=True,
        )
        groups, api = process_groups(bench)
        load_before = load_average()
        results = run_async(
            run_all(todo, bench.base_url, seeded["api_key"], args, Usage(groups, api))
        )
        load_after = load_average()
        bench.check_processes()
        mix = results.get("mix")
        result: dict[str, Any] = {
            "benchmark": "crm_read",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git": code,
            "machine": machine(),
            "parameters": {
                "contacts": args.contacts,
                "messages": args.messages,
                "concurrency": args.concurrency,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "search_fragments": args.search,
                "random_conversations": args.random_conversations,
                "contact_sample": args.contact_sample,
                "seed": args.seed,
                "mix_weights_percent": {name: weight for weight, name in MIX},
                "load": "closed loop: each client sends its next request when the previous "
                "answer is in; httpx AsyncClient per client, HTTP/1.1 keep-alive",
                "rate_limit_per_minute": RATE_LIMIT,
                "rate_limit_note": "ZAPFLOW_RATE_LIMIT_PER_MINUTE raised for the API process "
                "(default 1,200 per key and route group) so the limiter, still consulted on "
                "every request, never refuses the benchmark",
                "processes": "zapflow api only (no worker), ZAPFLOW_LOG_LEVEL=WARNING",
                "durable": True,
                "temporal": "headless dev server",
            },
            "seed": {k: v for k, v in seeded.items() if k != "api_key"},
            "dataset": dataset(bench),
            "targets": targets.public(),
            "results": results,
            "goal": {
                "rps": GOAL_RPS,
                "p99_ms": GOAL_P99_MS,
                "met_by_mix": bool(
                    mix
                    and mix["errors"] == 0
                    and mix["rps"] >= GOAL_RPS
                    and (mix["latency_ms"]["p99"] or 0) <= GOAL_P99_MS
                ),
            },
            "load_average": {
                "at_start": load_at_start,
                "before_load": load_before,
                "after": load_after,
            },
            "api_log_lines": count_lines(bench),
        }
        if (now := git_state()) != code:  # somebody committed or edited meanwhile
            result["git_at_end"] = now
        print_table(result)
        write_json(args.output, result)
        print(f"wrote {args.output}")
        if args.explain:
            explain(bench, seeded["company_id"])
        return 0 if not any(r["errors"] for r in results.values()) else 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        bench.print_logs()
        return 1
    finally:
        bench.stop(keep=args.keep)


def explain(bench: BenchStack, company_id: str) -> None:
    """bench/explain_plans.py on this run's database, before the stack stops."""
    script = Path(__file__).with_name("explain_plans.py")
    argv = [sys.executable, str(script), "--database-url", bench.stack.database_url,
            "--company-id", company_id]  # fmt: skip
    print(f"\n$ {script.name} --company-id {company_id}", flush=True)
    subprocess.run(argv, env=bench.env, timeout=600, check=False)


def count_lines(bench: BenchStack) -> int:
    """Lines the API logged at WARNING or above (slow requests, errors): 0 is the norm."""
    path = bench.stack.logs_dir / "api.log"
    try:
        return sum(1 for _ in path.open(errors="replace"))
    except OSError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
