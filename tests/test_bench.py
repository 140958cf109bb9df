"""The benchmark suite's arithmetic, report and compare command, and a few seconds of its load
generator against the test stack (nothing here measures or asserts a time)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psutil
import pytest
from typer.testing import CliRunner

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import APP_SECRET, create_cloud_instance
from zapflow.bench import floors, profile
from zapflow.bench.stack import ResourceWatch, free_port, role_of
from zapflow.bench.stats import compare, counts_per_window, percentile, summarize, windows
from zapflow.cli import app
from zapflow.config import Settings
from zapflow.devstack import EmbeddedStack
from zapflow.whatsapp.simulate import cloud_delivery, cloud_signature, cloud_text


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    assert summarize([1.0, 2.0, 3.0, 4.0]) == {"p50": 2.0, "p95": 4.0, "p99": 4.0, "max": 4.0}
    assert summarize([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_windows_group_by_time_and_count_rates() -> None:
    points = [(0.1, 10.0), (0.9, 30.0), (1.5, 100.0), (3.2, 5.0)]
    found = windows(points)
    assert [(w["t"], w["n"], w["p50"], w["max"]) for w in found] == [
        (0.0, 2, 10.0, 30.0),
        (1.0, 1, 100.0, 100.0),
        (3.0, 1, 5.0, 5.0),
    ]
    rates = counts_per_window([0.1, 0.2, 0.3, 2.5], width=0.5)
    assert rates[0] == {"t": 0.0, "per_s": 6.0}
    assert {"t": 1.0, "per_s": 0.0} in rates  # an empty window is a zero, not a gap
    assert rates[-1] == {"t": 2.5, "per_s": 2.0}


def result(p99: float, rps: float, rss: float) -> dict[str, Any]:
    return {
        "scenario": "crm-read",
        "results": {"saturation": {"rps": rps, "latency_ms": {"p99": p99}, "ok": True}},
        "memory": {"api_peak_rss_mib": rss},
        "series": {"saturation": {"latency": [{"t": 0, "p99": p99}]}},
    }


def test_compare_pairs_the_measurements_both_hold() -> None:
    rows = compare(result(40, 500, 100), result(20, 1000, 150))
    assert rows == [
        ("results.saturation.rps", 500.0, 1000.0, 2.0),
        ("results.saturation.latency_ms.p99", 40.0, 20.0, 0.5),
        ("memory.api_peak_rss_mib", 100.0, 150.0, 1.5),
    ]  # booleans and series are not measurements


def test_compare_command_prints_ratios(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(orjson.dumps(result(40, 500, 100)))
    b.write_bytes(orjson.dumps(result(20, 1000, 150)))
    done = CliRunner().invoke(app, ["bench", "compare", str(a), str(b)])
    assert done.exit_code == 0, done.output
    assert "results.saturation.rps" in done.output
    assert "2.00x" in done.output and "0.50x" in done.output

    missing = CliRunner().invoke(app, ["bench", "compare", str(a)])
    assert missing.exit_code == 2
    unknown = CliRunner().invoke(app, ["bench", "no-such-scenario"])
    assert unknown.exit_code == 2
    assert "unknown scenario no-such-scenario" in unknown.output


def test_profile_summary_counts_self_and_inclusive_time() -> None:
    collapsed = "\n".join([
        "main (zapflow/cli.py:10);handle (zapflow/api/webhooks.py:5);execute (asyncpg/conn.py:1) 6",
        "main (zapflow/cli.py:10);handle (zapflow/api/webhooks.py:7);dumps (orjson.py:3) 3",
        "main (zapflow/cli.py:10);select (selectors.py:2) 1",
    ])  # fmt: skip
    found = profile.summarize(collapsed)
    assert found["samples"] == 10
    assert found["self_percent"][0] == ["execute (asyncpg/conn.py)", 60.0]
    # the two lines of `handle` are one function; the CLI entry point is on every stack
    assert found["zapflow_inclusive_percent"] == [["handle (zapflow/api/webhooks.py)", 90.0]]


def pipeline_step(e2e_p99: float, backlog: int, cpu_ms: dict[str, float]) -> dict[str, Any]:
    return {
        "rate": 80, "sent": 100, "errors": 0, "lost": 0, "duplicates": 0, "achieved_rate": 80.0,
        "delivered_rate": 79.5, "drain_s": 0.4, "ack_ms": {"p50": 3, "p95": 5, "p99": 8, "max": 9},
        "e2e_ms": {"p50": 90, "p95": 200, "p99": e2e_p99, "max": 700},
        "max_inbox_backlog": backlog, "max_temporal_backlog": 3, "max_backlog": backlog + 3,
        "cpu_percent": {"api": 20, "worker": 80, "machine_busy": 150}, "peak_rss_mib": {"api": 180},
        "cpu_ms_per_unit": cpu_ms,
    }  # fmt: skip


ZAPFLOW_MS = {"api": 5.0, "worker:pipeline": 40.0, "temporal": 30.0, "postgres": 10.0,
              "load_generator": 2.0, "other": 50.0, "machine_busy": 140.0}  # fmt: skip
FLOOR_MS = {"floor": 15.0, "temporal": 25.0, "api": 0.5, "machine_busy": 90.0}


def pipeline_result(common: dict[str, Any], started_load: float) -> dict[str, Any]:
    lagging = {"max_embedding_backlog": 70, "embedding_backlog_end": 60, "embedded": 40,
               "embedder_cpu_ms_per_embedded": {"worker:embeddings": 12.5}}  # fmt: skip
    results = {
        "inbox": {"80/s": {**pipeline_step(450, 12, ZAPFLOW_MS), **lagging}},
        "direct": {"80/s": pipeline_step(900, 0, {})},
        "floor": {"80/s": pipeline_step(60, 0, FLOOR_MS)},
    }
    floors.pipeline_ratios(results)
    return {
        **common, "scenario": "pipeline", "results": results,
        "load_average": {"start": [started_load, 1, 1], "end": [1, 1, 1]},
        "series": {"inbox": {"80/s": {"latency": [{"t": 0.0, "p50": 90, "p95": 200, "p99": 450}],
                                      "sent": [{"t": 0.0, "per_s": 80}], "done": [],
                                      "backlog": [[0.0, 12, 3]]}}},
    }  # fmt: skip


def test_pipeline_ratios_divide_zapflow_stack_by_the_floor_stack() -> None:
    inbox = pipeline_result({}, 0.1)["results"]["inbox"]["80/s"]
    assert inbox["stack_cpu_ms"] == 85.0  # api + worker + temporal + postgres: not the loadgen
    ratios = inbox["ratio_to_floor"]["floor"]
    assert ratios == {"stack": round(85 / 40, 2), "without_embedder": round(85 / 40, 2),
                      "temporal": 1.2, "machine": round(140 / 90, 2)}  # fmt: skip


def test_pipeline_ratios_to_the_same_work_floor_with_and_without_embedders() -> None:
    """The same-work floor's stack: its three processes, Postgres and Redis (no Temporal: it
    stores as zapflow's relay does a message that sets off nothing); zapflow's ratio to both
    floors, with and without each one's embedding process, and to Temporal's where used."""
    from zapflow.bench.costs import ratio_text
    from zapflow.bench.report import pipeline_cost_row

    zapflow = {
        "api": 5.0,
        "worker:pipeline": 30.0,
        "worker:embeddings": 10.0,
        "temporal": 30.0,
        "postgres": 10.0,
        "redis": 1.0,
        "load_generator": 2.0,
        "machine_busy": 100.0,
    }
    work = {"floor-work:web": 3.0, "floor-work:worker": 6.0, "floor-work:embeddings": 8.0,
            "temporal": 0.4, "postgres": 6.0, "redis": 1.0, "api": 0.5, "worker:pipeline": 0.3,
            "load_generator": 2.0, "machine_busy": 60.0}  # fmt: skip
    results = {"floor": {"40/s": {"cpu_ms_per_unit": FLOOR_MS}},
               "floor-work": {"40/s": {"cpu_ms_per_unit": work}},
               "inbox": {"40/s": {"cpu_ms_per_unit": zapflow}}}  # fmt: skip
    floors.pipeline_ratios(results)
    same_work, inbox = results["floor-work"]["40/s"], results["inbox"]["40/s"]
    assert (same_work["stack_cpu_ms"], same_work["stack_cpu_ms_without_embedder"]) == (24.0, 16.0)
    assert (inbox["stack_cpu_ms"], inbox["stack_cpu_ms_without_embedder"]) == (86.0, 76.0)
    ratios = inbox["ratio_to_floor"]
    assert (ratios["floor"]["stack"], ratios["floor"]["without_embedder"]) == (2.15, 1.9)
    assert (ratios["floor-work"]["stack"], ratios["floor-work"]["without_embedder"]) == (
        round(86 / 24, 2), round(76 / 16, 2),
    )  # fmt: skip
    assert ratios["floor-work"]["temporal"] is None  # its Temporal idles: no ratio to it
    assert ratio_text(inbox) == (
        "floor 2.1x (Temporal 1.2x, without embedders 1.9x); "
        "floor-work 3.6x (without embedders 4.8x)"
    )
    measured = pipeline_cost_row({"pipeline": {"results": results}})[3]
    assert measured.startswith("zapflow 86.0 vs floor 40.0, same-work floor 24.0 CPU-ms per ")


def test_report_puts_measured_beside_goals(tmp_path: Path) -> None:
    """The report test runs in `make test`: matplotlib is in the test extra."""
    from zapflow.bench.report import write_report

    results, before = tmp_path / "results", tmp_path / "before"
    results.mkdir()
    before.mkdir()
    common = {"run_id": "r1", "started": "2026-01-01T00:00:00Z", "wall_seconds": 10,
              "git": {"commit": "abc"}, "machine": {"cores": 2, "cpu_model": "x",
              "memory_gib": 8, "python": "3.11"}}  # fmt: skip
    quiet = {"start": [0.1] * 3, "end": [0.1] * 3}
    search = {**common, "scenario": "search", "load_average": quiet, "status": "not available",
              "reason": "bench/embeddings_search.py not in this tree"}  # fmt: skip
    (results / "pipeline.json").write_bytes(orjson.dumps(pipeline_result(common, 3.0)))
    (results / "search.json").write_bytes(orjson.dumps(search))
    (before / "pipeline.json").write_bytes(orjson.dumps(pipeline_result(common, 0.1)))
    report = tmp_path / "REPORT.md"

    write_report(results, report, "r1", before)

    text = report.read_text()
    assert "| message processing (webhook → SSE) | < 500 ms |" in text
    assert "p50 90.0 / p99 450.0 ms at 80/s (delivered 79.5/s, 0 lost) | ✅ |" in text
    assert "max 15 (inbox 12, Temporal 3)" in text
    assert (
        "| webhook ack | < 200 ms | p99 ≤ 20 ms at 1,000 deliveries/s, 0 errors | not measured"
        in text
    )
    assert "not available: bench/embeddings_search.py not in this tree" in text
    assert "80/s: ack p99 8.0 ms with the inbox vs 8.0 ms without" in text
    assert "The machine was shared during this run" in text  # load 3.0 at the pipeline's start
    # CPU-ms per message by process, the stack and the ratio to the floor of the same run
    assert "| variant | step | api | worker:pipeline | floor | temporal | postgres |" in text
    assert (
        "| inbox | 80/s | 5.00 | 40.00 |  | 30.00 | 10.00 | 85.0 | 140.0 | 50.0 | floor 2.1x"
        in text
    )
    assert "| floor | 80/s | 0.50 |  | 15.00 | 25.00 |  | 40.0 | 90.0 |" in text
    assert (
        "- inbox 80/s: embedding queue max 70, 60 at the window's end; 40 taken off it in the "
        "window, worker:embeddings 12.5 CPU-ms per message taken off; the stack so counted "
        "97.5 CPU-ms per message (2.4x the floor)" in text
    )
    for png in ("pipeline-inbox.png", "pipeline-cpu.png", "pipeline-cpu-before-after.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 1000
        assert f"![pipeline](plots/{png})" in text


def test_a_lagging_embedder_is_counted_per_message_it_embedded() -> None:
    """Its CPU per delivered message (5.0, half the messages embedded in the window) is
    replaced in the stack by its CPU per message embedded (10.0)."""
    from zapflow.bench.report import embedding_lag

    inbox = {"max_embedding_backlog": 50, "embedding_backlog_end": 50, "embedded": 50,
             "embedder_cpu_ms_per_embedded": {"worker:embeddings": 10.0}, "stack_cpu_ms": 30.0,
             "cpu_ms_per_unit": {"worker:embeddings": 5.0, "temporal": 10.0}}  # fmt: skip
    # the same-work floor's so counted: 20 + 6 - 3 (zapflow's idle embedder is not its)
    work = {"max_embedding_backlog": 9, "embedding_backlog_end": 9, "embedded": 50,
            "embedder_cpu_ms_per_embedded": {"floor-work:embeddings": 6.0,
                                             "worker:embeddings": 0.1},
            "stack_cpu_ms": 20.0, "cpu_ms_per_unit": {"floor-work:embeddings": 3.0}}  # fmt: skip
    results = {"inbox": {"40/s": inbox}, "floor": {"40/s": {"stack_cpu_ms": 14.0}},
               "floor-work": {"40/s": work}}  # fmt: skip
    [line, floor_line] = [x for x in embedding_lag(results) if x.startswith("- ")]
    assert line.endswith(
        "the stack so counted 35.0 CPU-ms per message (2.5x the floor, 1.5x the same-work floor's)"
    )
    assert floor_line.endswith("floor-work:embeddings 6.0 CPU-ms per message taken off; the "
                               "stack so counted 23.0 CPU-ms per message")  # fmt: skip


async def load_generator(tmp_path: Path, plan: dict[str, Any]) -> tuple[list[Any], Any]:
    """``python -m zapflow.bench.loadgen`` on ``plan``: its progress lines and its result."""
    (tmp_path / "plan.json").write_bytes(orjson.dumps(plan))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zapflow.bench.loadgen", str(tmp_path / "plan.json"),
        str(tmp_path / "out.json"), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0
    progress = [orjson.loads(line) for line in stdout.splitlines()]
    return progress, orjson.loads((tmp_path / "out.json").read_bytes())


@pytest.mark.usefixtures("worker")
async def test_load_generator_sends_open_loop_and_sees_every_message(
    tmp_path: Path, api_url: str, tenant: Tenant, settings: Settings
) -> None:
    """Two seconds of the pipeline scenario's load, from its own process, on the test stack."""
    from zapflow.bench.scenarios import deliveries

    instance = await create_cloud_instance(tenant)
    plan = {
        "mode": "webhook", "base_url": api_url, "api_key": tenant.api_key,
        "webhook_url": api_url + urlsplit(instance["webhook_url"]).path,
        "app_secret": APP_SECRET, "phone_number_id": instance["phone_number_id"], "sse": True,
        "database_url": settings.database_url, "company_id": tenant.id, "drain_timeout": 30,
        "steps": [{"name": "10/s", "rate": 10, "duration": 2, "customers": 5,
                   "customer_base": 5511930000000}],
    }  # fmt: skip
    progress, raw = await load_generator(tmp_path, plan)
    assert {"step": "10/s", "phase": "sent", "done": 20, "total": 20} in progress

    assert raw["skipped"] == []  # the step drained: nothing after it was skipped
    numbers, series = deliveries(raw["steps"][0], {}, e2e=True)
    assert (numbers["sent"], numbers["errors"], numbers["lost"], numbers["duplicates"]) == (
        20, 0, 0, 0,
    )  # fmt: skip
    assert numbers["e2e_ms"]["p50"] is not None and numbers["drain_s"] is not None
    assert series["backlog"], "the backlog poller sampled the inbox"
    # the embedding queue beside it: waiting + taken off = the messages stored so far
    assert all(b[3] >= 0 and 0 <= b[3] + b[4] <= 20 for b in series["backlog"])
    first, last = series["backlog"][0], series["backlog"][-1]
    assert numbers["embedded"] == last[4] - first[4] >= 0
    assert numbers["max_embedding_backlog"] >= numbers["embedding_backlog_end"] == last[3]
    scheduled = [row[0] for row in raw["steps"][0]["samples"]]
    assert scheduled == pytest.approx([i / 10 for i in range(20)])  # the open-loop schedule
    listed = await tenant.client.get("/api/v1/conversations")
    assert len(listed.json()["data"]) == 5


def test_summary_reads_a_run_of_two_api_processes_alone() -> None:
    """`--api-processes 2` alone: no plain ``zapflow`` variant; the summary says whose figures."""
    from zapflow.bench.report import crm_row, webhook_row

    latency = {"p50": 3.0, "p95": 8.0, "p99": 12.0, "max": 30.0}
    step = {"errors": 0, "achieved_rate": 1000.0, "ack_ms": latency, "latency_ms": latency,
            "rps": 1100.0, "cpu_ms_per_unit": {"api": 0.5}}  # fmt: skip
    both = {"zapflow x2": {"1000/s": step, "saturation": step}, "floor x2": {"1000/s": step}}
    results = {"webhook-ack": {"results": both}, "crm-read": {"results": both}}

    *_, measured, met = webhook_row(results)
    assert "p99 12.0" in measured and "0 errors, 2 API processes;" in measured and met
    *_, measured, met = crm_row(results)
    assert measured.startswith("saturation 1,100 req/s (p99 12.0 ms), 2 API processes") and met


def test_search_summary_reads_the_search_script_result() -> None:
    from zapflow.bench.scenarios import search_summary

    raw = {
        "throughput": [{"batch": 1, "per_second": 30.0}, {"batch": 64, "per_second": 120.0}],
        "dataset": {"embedded": 91_000},
        "latency_ms": {"semantic": {"p50": 9.0, "p99": 31.0}, "hybrid": {"p50": 12, "p99": 60}},
        "recall_at_10": {"ef_search=40": 0.9, "ef_search=100": 0.97},
        "plan_uses_hnsw": True,
    }
    summary = search_summary(raw, ef_search=100)
    assert summary["recall_at_10"] == 0.97
    by_scan = {
        "ef_search=100 iterative_scan=off": 0.79,
        "ef_search=100 iterative_scan=relaxed_order": 0.8,
    }
    assert search_summary({"recall_at_10": by_scan}, ef_search=100)["recall_at_10"] == 0.8
    assert (summary["embeddings_per_second"], summary["embedding_batch"]) == (120.0, 64)
    assert summary["keyword_ms"] is None  # a mode it did not measure


def test_semantic_search_row_reads_the_current_hnsw_result(tmp_path: Path) -> None:
    """The summary's semantic search row: zapflow's index and ef_search at the largest size of
    the current HNSW results, not another build's or ef_search's figures."""
    from zapflow.bench import search_report

    def point(ef: int, recall: float, p99: float) -> dict[str, Any]:
        return {"ef_search": ef, "recall_at_10": recall, "recall_at_10_by_id": recall,
                "queries_below_0_9": 1, "latency_ms": {"p50": 10.0, "p99": p99},
                "backend_cpu_ms": {"p50": 6.0, "p99": 12.5},
                "postgres_cpu_ms_per_query": 7.0}  # fmt: skip

    def result(size: int, builds: list[dict[str, Any]]) -> dict[str, Any]:
        return {"load_before": [1.0], "load_after": [2.0], "git": {"commit": "abc"},
                "recall": {"vectors_queried_company": size, "vectors_other_company": 1,
                           "real_vectors": 1, "synthetic_vectors": 0, "queries": 3,
                           "builds": builds}}  # fmt: skip

    built = {"build_seconds": 60.0, "build_postgres_cpu_seconds": 50.0, "index_mb": 200.0}
    ours = {**search_report.INDEX, **built, "curve": [point(100, 0.9, 20), point(200, 0.97, 41)]}
    bigger = {"m": 32, "ef_construction": 80, **built, "curve": [point(200, 0.99, 90.0)]}
    newest, older = search_report.CURRENT["hnsw_recall"][:2]
    for path, size in ((newest, 100_000), (older, 5_000)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(orjson.dumps(result(size, [ours, bigger])))
    what, _, _, measured, met = search_report.summary_rows(tmp_path)[0]
    assert what == "semantic search" and search_report.EF_SEARCH == 200
    assert measured.startswith("recall@10 0.970 (ties counted, tenant-filtered; m 16 / ")
    assert "over 100,000 vectors; per query: wall p50 10.0 / p99 41.0 ms" in measured
    assert "backend CPU p50 6.0 / p99 12.5 ms" in measured and newest in measured
    assert met is True
    text = "\n".join(search_report.sections(tmp_path, "results"))
    assert "| 16 / 64 |" in text and "m 32 / 80 at ef_search 200 (0.990" in text


def test_processes_are_grouped_by_role_from_their_command_line() -> None:
    python = "/venv/bin/python"
    assert role_of([python, "-m", "zapflow.cli", "api"], "x") == "api"
    assert role_of([python, "-m", "zapflow.cli", "api", "--workers", "2"], "x") == "api"
    assert role_of([python, "/venv/bin/zapflow", "worker"], "x") == "worker"
    assert role_of([python, "-m", "zapflow.cli", "worker", "--role", "pipeline"], "x") == (
        "worker:pipeline"
    )
    assert role_of([python, "-m", "zapflow.cli", "worker", "--role=embeddings"], "x") == (
        "worker:embeddings"
    )
    assert role_of([python, "-m", "zapflow.bench.api_floor", "8000"], "api-floor") == "api-floor"


BUSY = """
import subprocess, sys, time
def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
spin(0.3)
if sys.argv[1] == "parent":
    subprocess.run([sys.executable, "-c", sys.argv[2], "child", ""], check=True)  # reaped
print("done", flush=True)
sys.stdin.read()
"""


def test_a_group_counts_its_processes_and_their_ended_children() -> None:
    """The parent spins 0.3 CPU-s, its child 0.3 more and ends (reaped) within the window."""
    process = subprocess.Popen(
        [sys.executable, "-c", BUSY, "parent", BUSY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with ResourceWatch({"busy": [psutil.Process(process.pid)]}) as watch:
            watch.start()
            assert process.stdout is not None and process.stdout.readline() == "done\n"
            usage = watch.stop()
    finally:
        process.kill()
        process.wait()
    # 0.6 CPU-s spun; /proc counts in clock ticks, so allow for rounding, not for a lost child
    assert usage["cpu_seconds"]["busy"] >= 0.5
    assert usage["cpu_seconds"]["machine_busy"] > 0
    assert floors.stack_ms({"busy": 600.0, "load_generator": 5.0, "other": 99.0}) == 600.0


def test_postgres_group_counts_backends_that_ended_in_the_window(stack: EmbeddedStack) -> None:
    """A backend does work and exits: the postmaster's reaped-children time still holds it."""
    assert stack.postgres.process is not None
    postmaster = psutil.Process(stack.postgres.process.pid)
    with ResourceWatch({"postgres": [postmaster]}) as watch:
        watch.start()
        stack.psql(
            "SELECT sum(i::bigint * i) FROM generate_series(1, 3000000) AS i"
        )  # its own backend
        usage = watch.stop()
    assert usage["cpu_seconds"]["postgres"] > 0.05


async def start_api_floor(settings: Settings, company_id: str, instance_id: str) -> tuple[
    asyncio.subprocess.Process, str
]:  # fmt: skip
    port = free_port()
    env = {
        **os.environ,
        "ZAPFLOW_FLOOR_DATABASE_URL": settings.database_url,
        "ZAPFLOW_FLOOR_COMPANY_ID": company_id,
        "ZAPFLOW_FLOOR_INSTANCE_ID": instance_id,
        "ZAPFLOW_FLOOR_APP_SECRET": APP_SECRET,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zapflow.bench.api_floor", str(port), env=env
    )
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                if (await client.get(base_url + "/readyz")).status_code == 200:
                    return process, base_url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("the API floor did not start")


async def test_api_floor_acks_webhooks_and_serves_the_crm_reads(
    tenant: Tenant, settings: Settings
) -> None:
    instance = await create_cloud_instance(tenant)
    name = f"Floor Silva {uuid.uuid4().hex[:6]}"
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    contact = await tenant.client.post(
        "/api/v1/contacts", json={"name": name, "phone_number": phone}
    )
    assert contact.status_code == 201, contact.text
    process, base_url = await start_api_floor(settings, tenant.id, instance["id"])
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as floor:
            detail = await floor.get(f"/api/v1/contacts/{contact.json()['id']}")
            assert (detail.status_code, detail.json()["name"]) == (200, name)
            assert (await floor.get(f"/api/v1/contacts/{uuid.uuid4()}")).status_code == 404
            found = await floor.get("/api/v1/contacts", params={"q": name, "limit": 20})
            assert [row["id"] for row in found.json()["data"]] == [contact.json()["id"]]
            page = await floor.get("/api/v1/conversations", params={"limit": 50})
            assert page.status_code == 200 and isinstance(page.json()["data"], list)

            change = cloud_text(phone[1:], f"wamid.floor.{uuid.uuid4().hex}", "oi")
            raw = orjson.dumps(cloud_delivery(instance["phone_number_id"], change))
            path = urlsplit(instance["webhook_url"]).path
            headers = {"x-hub-signature-256": cloud_signature(raw, APP_SECRET)}
            first = await floor.post(path, content=raw, headers=headers)
            again = await floor.post(path, content=raw, headers=headers)
            assert (first.status_code, first.json()) == (200, {"stored": 1, "duplicates": 0})
            assert again.json() == {"stored": 0, "duplicates": 1}  # ON CONFLICT DO NOTHING
            forged = await floor.post(path, content=raw, headers={"x-hub-signature-256": "x"})
            assert forged.status_code == 401
    finally:
        process.terminate()
        await process.wait()


async def test_temporal_floor_signals_with_start_then_plain_signals(
    tmp_path: Path, settings: Settings
) -> None:
    """The load generator's floor mode on the test Temporal: every message reaches its
    workflow's no-op local activity, with signal-with-start and with plain signals."""
    plan = {
        "mode": "floor", "temporal_address": settings.temporal_address,
        "temporal_namespace": settings.temporal_namespace, "conversations": 3,
        "drain_timeout": 90,
        "steps": [{"name": "start", "rate": 10, "duration": 1, "start": True},
                  {"name": "signal", "rate": 10, "duration": 1, "start": False}],
    }  # fmt: skip
    progress, raw = await load_generator(tmp_path, plan)
    # the last step's CPU window closes before the workflows are terminated
    assert {"step": "teardown", "phase": "terminating the workflows"} in progress
    from zapflow.bench.scenarios import deliveries

    for step in raw["steps"]:
        numbers, _ = deliveries(step, {"cpu_seconds": {"floor": 0.5}}, e2e=True)
        assert (numbers["sent"], numbers["errors"], numbers["lost"]) == (10, 0, 0), step["name"]
        assert numbers["cpu_ms_per_unit"] == {"floor": 50.0}


async def start_work_floor(settings: Settings, tenant: Tenant, instance_id: str) -> tuple[
    list[asyncio.subprocess.Process], str
]:  # fmt: skip
    """The same-work floor's web, worker and embedder processes on the test stack."""
    port = free_port()
    env = {**os.environ, "ZAPFLOW_DATABASE_URL": settings.database_url,
           "ZAPFLOW_REDIS_URL": settings.redis_url,
           "ZAPFLOW_EMBEDDING_BATCH_SIZE": "4"}  # fmt: skip
    module = [sys.executable, "-m", "zapflow.bench.work_floor"]
    web = await asyncio.create_subprocess_exec(
        *module, "web", str(port), tenant.id, instance_id, APP_SECRET, tenant.api_key, env=env
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = asyncio.get_running_loop().time() + 90
    async with httpx.AsyncClient() as client:
        while not await ready(client, base_url + "/readyz"):
            if asyncio.get_running_loop().time() > deadline:
                web.kill()
                raise AssertionError("the same-work floor's web process did not start")
            await asyncio.sleep(0.1)
    others = [await asyncio.create_subprocess_exec(*module, *args, env=env)
              for args in (["worker", tenant.id, instance_id], ["embeddings"])]  # fmt: skip
    return [web, *others], base_url


async def ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


async def test_work_floor_delivers_every_message_once_and_fills_its_cpu_groups(
    tmp_path: Path, tenant: Tenant, settings: Settings
) -> None:
    """The same-work floor (``floor-work``) under the load generator's webhook mode, e2e on its
    own stream: every message stored, published and embedded once; its three groups used CPU."""
    from zapflow.bench import work_floor
    from zapflow.bench.scenarios import deliveries

    instance = await create_cloud_instance(tenant)
    processes, base_url = await start_work_floor(settings, tenant, instance["id"])
    path = urlsplit(instance["webhook_url"]).path
    plan = {
        "mode": "webhook", "base_url": base_url, "api_key": tenant.api_key,
        "webhook_url": base_url + path, "app_secret": APP_SECRET,
        "phone_number_id": instance["phone_number_id"], "sse": True,
        "database_url": settings.database_url, "company_id": tenant.id, "drain_timeout": 60,
        "table_prefix": work_floor.PREFIX,
        "steps": [{"name": "10/s", "rate": 10, "duration": 1, "customers": 3,
                   "customer_base": 5511920000000}],
    }  # fmt: skip
    groups = {g: [psutil.Process(p.pid)] for g, p in zip(floors.WORK_FLOOR_GROUPS, processes,
                                                           strict=True)}  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=base_url) as floor:

            async def deliver(wa_id: str, key: str, signature: str | None = None) -> int:
                change = cloud_text(wa_id, key, "bench warm-up")
                raw = orjson.dumps(cloud_delivery(instance["phone_number_id"], change))
                signed = {"x-hub-signature-256": signature or cloud_signature(raw, APP_SECRET)}
                return (await floor.post(path, content=raw, headers=signed)).status_code

            # one message first: the worker and the embedder (its model) are up before the load
            assert await deliver("5511929999999", f"wamid.warmup.{uuid.uuid4().hex}") == 200
            await wait_embedded(settings, tenant.id, 1)
            with ResourceWatch(groups) as watch:
                watch.start()
                _, raw = await load_generator(tmp_path, plan)
                embedded, key = await wait_embedded(settings, tenant.id, 11)
                usage = watch.stop()
            assert await deliver(*key) == 200  # again: acknowledged, not stored twice
            assert await deliver(*key, signature="sha256=forged") == 401
            await asyncio.sleep(1.0)  # time for a relay pass, were the delivery stored again
            assert (await wait_embedded(settings, tenant.id, 11))[0] == (11, 11)
            refused = await floor.get("/api/v1/stream", headers={"Authorization": "Bearer x"})
            assert refused.status_code == 401
    finally:
        for process in processes:
            process.terminate()
            await process.wait()
    numbers, _ = deliveries(raw["steps"][0], usage, e2e=True)
    assert (numbers["sent"], numbers["errors"], numbers["lost"], numbers["duplicates"]) == (
        10, 0, 0, 0,
    ), numbers  # fmt: skip
    assert embedded == (
        11,
        11,
    )  # the warm-up's and the load's, stored once, each embedded or skipped
    assert all(usage["cpu_seconds"][g] > 0 for g in floors.WORK_FLOOR_GROUPS), usage
    per_message = numbers["cpu_ms_per_unit"]
    assert floors.stack_ms(per_message, floors.WORK_FLOOR) == pytest.approx(
        sum(per_message[g] for g in floors.WORK_FLOOR_GROUPS), abs=0.05
    )  # no Temporal, Postgres or Redis group watched here


async def wait_embedded(
    settings: Settings, company_id: str, count: int
) -> tuple[tuple[int, int], tuple[str, str]]:
    """Once the floor stored ``count`` messages of the company and embedded those worth a vector
    (``embeddable_text``: "Oi" is not), its (messages, vectors less the skipped texts), and one
    message's (sender, key id)."""
    import asyncpg

    from zapflow.bench.work_floor import PREFIX
    from zapflow.embeddings import embeddable_text

    db = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    deadline = asyncio.get_running_loop().time() + 90  # the embedder loads its model first
    found: tuple[int, int] = (0, 0)
    try:
        while asyncio.get_running_loop().time() < deadline:
            rows = await db.fetch(
                f"SELECT body, payload->>'from' || ' ' || message_key_id AS key"
                f" FROM {PREFIX}messages WHERE company_id = $1", uuid.UUID(company_id),
            )  # fmt: skip
            vectors = await db.fetchval(
                f"SELECT count(*) FROM {PREFIX}conversation_embeddings WHERE company_id = $1",
                uuid.UUID(company_id),
            )
            skipped = sum(embeddable_text(r["body"], None, settings.embedding_min_chars) is None
                          for r in rows)  # fmt: skip
            found = (len(rows), vectors + skipped)
            if len(rows) >= count and found[1] >= len(rows):
                sender, key = rows[0]["key"].split()
                return found, (sender, key)
            await asyncio.sleep(0.1)
    finally:
        await db.close()
    raise AssertionError(f"(messages, embedded or skipped) {found}, {count} messages expected")


def test_bench_customers_write_chat_lines_and_only_questions_never_repeat() -> None:
    """The pipeline bench's texts: greetings and thanks repeat as in real chats, questions are
    numbered per message (and per step), and the same key id always gets the same text."""
    from zapflow.bench.loadgen import customer_text

    texts = [customer_text(f"wamid.run1.{step}.{n:07d}") for step in (0, 1) for n in range(2000)]
    questions = [t for t in texts if "#" in t]
    assert customer_text("wamid.run1.0.0000007") == texts[7]
    assert len(set(questions)) == len(questions)
    assert 0.45 < len(questions) / len(texts) < 0.65
    repeated = [t for t in texts if "#" not in t]
    assert len(set(repeated)) < 60 < len(repeated)
    assert all(int(t.rsplit("#", 1)[1]) >= 1_000_000 for t in texts[2000:] if "#" in t)
