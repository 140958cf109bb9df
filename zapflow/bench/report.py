"""bench/REPORT.md and its plots, generated from the results in bench/results/: the summary
table (seed target / zapflow goal / measured), a table per scenario, what the inbox buys, the
profile of the slowest path, and PNGs of latency percentiles, throughput and backlog over time."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from zapflow.bench import SCENARIO_NAMES as NAMES
from zapflow.bench import costs, floors, search_report
from zapflow.bench.campaign import campaign_section
from zapflow.bench.markdown import Row, all_met, mark, num, table, within
from zapflow.bench.plots import write_plots

BUSY_LOAD = 1.0  # 1-minute load average above this at a scenario's start: somebody else was busy


def load(results_dir: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for name in NAMES:
        path = results_dir / f"{name}.json"
        if path.exists():
            found[name] = orjson.loads(path.read_bytes())
    return found


# --- summary -----------------------------------------------------------------------------------


def ok_results(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The scenario's steps; of zapflow with one API process where the floor ran beside it, else
    of zapflow's first process count (a run of `--api-processes 2` alone)."""
    result = results.get(name)
    if not result or "results" not in result:
        return None
    found = costs.variants(result)
    ours = [v for v in found if not v.startswith("floor")]
    return found.get("zapflow") or (found[ours[0]] if ours else None)


def processes_note(results: dict[str, dict[str, Any]], name: str) -> str:
    """`, 2 API processes` when the summary's figures are not of one process."""
    found = costs.variants(results.get(name) or {})
    if "zapflow" in found:
        return ""
    ours = [v for v in found if not v.startswith("floor")]
    return f", {ours[0].partition(' x')[2]} API processes" if ours else ""


def webhook_row(results: dict[str, dict[str, Any]]) -> Row:
    r = (ok_results(results, "webhook-ack") or {}).get("1000/s")
    what, seed, goal = "webhook ack", "< 200 ms", "p99 ≤ 20 ms at 1,000 deliveries/s, 0 errors"
    if r is None:
        return what, seed, goal, "not measured", None
    ack = r["ack_ms"]
    api_ms = (r.get("cpu_ms_per_unit") or {}).get("api")
    measured = (
        f"p50 {num(ack['p50'])} / p99 {num(ack['p99'])} / max {num(ack['max'])} ms "
        f"at 1,000/s, {r['errors']} errors{processes_note(results, 'webhook-ack')}; "
        f"API {num(api_ms, 2)} CPU-ms per delivery"
        + (f" ({costs.ratio_text(r)} the floor)" if r.get("ratio_to_floor") else "")
    )
    return what, seed, goal, measured, all_met(within(ack["p99"], 20), r["errors"] == 0)


def pipeline_cost_row(results: dict[str, dict[str, Any]]) -> Row:
    what, seed, goal = (
        "pipeline CPU per message",
        "—",
        "≤ 1.5x the Temporal floor (signal-with-start) at 40 msg/s, same run",
    )
    pipeline = results.get("pipeline") or {}
    variants = costs.variants(pipeline) if "results" in pipeline else {}
    r = (variants.get("inbox") or {}).get("40/s")
    ratios = (r or {}).get("ratio_to_floor") or {}
    if not r or "floor" not in ratios:
        return what, seed, goal, "not measured", None
    floor = (variants.get("floor") or {}).get("40/s") or {}
    work = (variants.get(floors.WORK_FLOOR) or {}).get("40/s") or {}
    measured = (
        f"zapflow {num(r['stack_cpu_ms'])} vs floor {num(floor.get('stack_cpu_ms'))}"
        + (f", same-work floor {num(work.get('stack_cpu_ms'))}" if work else "")
        + f" CPU-ms per message: {costs.ratio_text(r)}"
    )
    return what, seed, goal, measured, within(ratios["floor"]["stack"], 1.5)


def pipeline_rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    pipeline = results.get("pipeline") or {}
    r = ((pipeline.get("results") or {}).get("inbox") or {}).get("80/s")
    rows: list[tuple[str, str, str]] = [
        (
            "message processing (webhook → SSE)",
            "< 500 ms",
            "p50 ≤ 150 ms, p99 ≤ 500 ms at 80 msg/s sustained",
        ),
        ("queue backlog", "≤ 100 jobs", "≤ 100 at 80 msg/s"),
    ]
    skipped = ((pipeline.get("runs") or {}).get("inbox") or {}).get("skipped") or []
    if "80/s" in skipped:
        return [
            (*row, "not run: a lower rate was not sustained (see below)", False) for row in rows
        ]
    if r is None:
        return [(*row, "not measured", None) for row in rows]
    e2e = r["e2e_ms"]
    return [
        (
            *rows[0],
            f"p50 {num(e2e['p50'])} / p99 {num(e2e['p99'])} ms at 80/s (delivered "
            f"{num(r['delivered_rate'])}/s, {r['lost']} lost)",
            all_met(within(e2e["p50"], 150), within(e2e["p99"], 500), r["lost"] == 0),
        ),
        (
            *rows[1],
            f"max {r['max_backlog']} (inbox {r['max_inbox_backlog']}, Temporal "
            f"{r['max_temporal_backlog']}); drained {num(r['drain_s'])} s after the load",
            within(r["max_backlog"], 100),
        ),
    ]


def crm_row(results: dict[str, dict[str, Any]]) -> Row:
    r = ok_results(results, "crm-read")
    what, seed, goal = (
        "CRM API (read mix)",
        "500 req/s, p50 < 50 ms, p99 < 500 ms",
        "≥ 1,000 req/s, p99 ≤ 50 ms on 1M messages, 0 errors",
    )
    if not r:
        return what, seed, goal, "not measured", None
    sat = r["saturation"]
    parts = [
        f"saturation {num(sat['rps'], 0)} req/s (p99 {num(sat['latency_ms']['p99'])} ms)"
        + processes_note(results, "crm-read")
    ]
    for step in ("500/s", "1000/s"):
        if step in r:
            s = r[step]
            parts.append(
                f"at {step}: p50 {num(s['latency_ms']['p50'])} / p99 "
                f"{num(s['latency_ms']['p99'])} ms, {s['errors']} errors"
            )
    thousand = r.get("1000/s")
    met = (
        None
        if thousand is None
        else all_met(within(thousand["latency_ms"]["p99"], 50), thousand["errors"] == 0)
    )
    return what, seed, goal, "; ".join(parts), met


def error_row(results: dict[str, dict[str, Any]]) -> Row:
    """zapflow's errors over every step (its floors' are not zapflow's)."""
    sent = errors = 0
    for name in ("webhook-ack", "crm-read", "pipeline"):
        for variant, steps in costs.variants(results.get(name) or {}).items():
            if variant.startswith("floor"):
                continue
            for step in steps.values():
                sent += step.get("sent", step.get("requests", 0))
                errors += step["errors"] + step.get("lost", 0)
    measured = f"{errors:,} of {sent:,} ({num(100 * errors / sent, 3)} %)" if sent else "-"
    return (
        "error rate (all loads, overload included)",
        "< 0.1 %",
        "0 under the benchmark loads",
        measured,
        None if not sent else errors == 0,
    )


def followup_row(results: dict[str, dict[str, Any]]) -> Row:
    what, seed, goal = "follow-up timers", "—", "fired ≤ 1 s late at p99"
    r = ok_results(results, "followup-timers")
    if not r:
        return what, seed, goal, status_of(results, "followup-timers"), None
    late = r["lateness_ms"]
    measured = (
        f"p50 {num(late['p50'])} / p99 {num(late['p99'])} ms late, "
        f"{r['missing']} of {r['created']} missing"
    )
    return what, seed, goal, measured, all_met(within(late["p99"], 1000), r["missing"] == 0)


def memory_row(results: dict[str, dict[str, Any]]) -> Row:
    parts, peaks = [], []
    for name, result in results.items():
        mem = result.get("memory") or {}
        if mem:
            peaks += list(mem.values())
            parts.append(
                f"{name}: "
                + ", ".join(f"{k.removesuffix('_peak_rss_mib')} {v:.0f}" for k, v in mem.items())
            )
    return (
        "memory (peak RSS, MiB)",
        "warn at 500 MB",
        "—",
        "; ".join(parts) or "-",
        None if not peaks else max(peaks) * 2**20 < 500e6,
    )


def status_of(results: dict[str, dict[str, Any]], name: str) -> str:
    result = results.get(name)
    if result is None:
        return "not run"
    return f"{result.get('status', 'ok')}: {result.get('reason') or result.get('error') or ''}"


def summary_rows(results: dict[str, dict[str, Any]], results_dir: Path) -> list[Row]:
    return [
        webhook_row(results),
        *pipeline_rows(results),
        pipeline_cost_row(results),
        crm_row(results),
        error_row(results),
        *search_report.summary_rows(results_dir),
        followup_row(results),
        memory_row(results),
    ]


# --- per scenario ------------------------------------------------------------------------------


def api_rows(steps: dict[str, Any], latency: str, rate: str, floor: bool) -> list[list[str]]:
    """An API variant's rows: throughput, latency, errors, CPU-ms per request, ratio to floor."""
    rows = []
    for name, s in steps.items():
        per_request = s.get("cpu_ms_per_unit") or {}
        api = per_request.get(floors.API_FLOOR if floor else "api")
        rows.append([
            name, num(s.get(rate), 0), *(num(s[latency][q]) for q in ("p50", "p95", "p99", "max")),
            str(s["errors"]), num(api, 2), num(per_request.get("postgres"), 2),
            costs.ratio_text(s) or "-",
        ])  # fmt: skip
    return rows


API_HEADER = ["step", "req/s", "p50", "p95", "p99", "max", "errors", "API CPU-ms/req",
              "Postgres CPU-ms/req", "zapflow / floor"]  # fmt: skip


def api_variant_title(variant: str) -> str:
    what = "the API floor (bare Starlette + asyncpg)" if variant.startswith("floor") else "zapflow"
    processes = variant.partition(" x")[2] or "1"
    return f"**{variant}**: {what}, {processes} API process{'es' if processes != '1' else ''}"


def webhook_section(result: dict[str, Any]) -> list[str]:
    lines = [
        "Ack latency (ms, from the due time): the API alone, no worker. The floor serves the same "
        "INSERT + NOTIFY (bench/api_floor.py) in the same run.",
        "",
    ]
    for variant, steps in costs.variants(result).items():
        lines += [
            api_variant_title(variant),
            "",
            *table(
                API_HEADER, api_rows(steps, "ack_ms", "achieved_rate", variant.startswith("floor"))
            ),
        ]
        overloaded = ((result.get("runs") or {}).get(variant) or {}).get("skipped")
        if overloaded:
            lines += [f"{', '.join(overloaded)}: not run, half the step above failed.", ""]
    skipped = (result.get("settings") or {}).get("api_processes_skipped")
    if skipped:
        lines += [
            f"Not run: {skipped} API processes (this tree's `zapflow api` has no --workers).",
            "",
        ]
    return lines + costs.cost_table(result, "delivery")


PIPELINE_TITLES = {
    "inbox": "zapflow, through the inbox (production)",
    "inbox-ai": "zapflow, the tenant's AI agent on (answering after 10 minutes, never within the "
    "run): every message needs its conversation's workflow (a signal, a debounce timer)",
    "direct": "webhook signals Temporal directly (bench-only, no inbox)",
    "floor": "the Temporal floor: signal-with-start per message, a no-op local activity per batch",
    "floor-signal": "the Temporal floor with plain signals to the open workflows",
    "floor-work": "the same-work floor: zapflow's work per message that sets off nothing (inbox "
    "row, a relay's persist transaction, outbox, Redis stream, SSE, embedding) done barely",
}


def pipeline_section(result: dict[str, Any]) -> list[str]:
    lines = []
    for variant, steps in result["results"].items():
        rows = [
            [
                name,
                num(s["delivered_rate"]),
                *(num(s["e2e_ms"][q]) for q in ("p50", "p95", "p99", "max")),
                num(s["ack_ms"]["p99"]),
                str(s["max_inbox_backlog"]),
                str(s["max_temporal_backlog"]),
                num(s["drain_s"]),
                f"{s['errors']}/{s['lost']}/{s['duplicates']}",
            ]
            for name, s in steps.items()
        ]
        skipped = ((result.get("runs") or {}).get(variant) or {}).get("skipped") or []
        if skipped:
            rows.append([f"{', '.join(skipped)}: skipped, the rate above was not sustained"])
        lines += [
            f"**{variant}**: {PIPELINE_TITLES.get(variant, variant)}",
            "",
            *table(
                [
                    "rate",
                    "delivered/s",
                    "e2e p50",
                    "p95",
                    "p99",
                    "max",
                    "ack (RPC) p99",
                    "max inbox",
                    "max Temporal",
                    "drain s",
                    "errors/lost/dup",
                ],
                rows,
            ),
        ]
    return (
        lines
        + inbox_buys(result["results"])
        + costs.cost_table(result, "message")
        + embedding_lag(result["results"])
    )


def embedder_counted(variant: str, s: dict[str, Any]) -> tuple[dict[str, float], float | None]:
    """A step's own embedder CPU per message it took off the queue (not the other variants'
    idle embedders), and the step's stack with the embedder so counted."""
    embedder = {
        g: v
        for g, v in s.get("embedder_cpu_ms_per_embedded", {}).items()
        if floors.in_stack(g, variant)
    }
    if not embedder or s.get("stack_cpu_ms") is None:
        return embedder, None
    per_unit = s.get("cpu_ms_per_unit") or {}
    return embedder, s["stack_cpu_ms"] + sum(v - per_unit.get(g, 0) for g, v in embedder.items())


def embedding_lag(results: dict[str, Any]) -> list[str]:
    """The embedder behind the pipeline: what its CPU per delivered message leaves out, and the
    stack with the embedder counted per message it took off the queue instead (against the
    Temporal floor, and the same-work floor's stack so counted)."""
    lines = []
    for variant, steps in results.items():
        for step, s in steps.items():
            if "embedded" not in s:
                continue
            embedder, stack = embedder_counted(variant, s)
            line = (
                f"- {variant} {step}: embedding queue max {s['max_embedding_backlog']}, "
                f"{s['embedding_backlog_end']} at the window's end; {s['embedded']} taken off "
                "it in the window, "
                + ", ".join(f"{g} {num(v)}" for g, v in embedder.items())
                + " CPU-ms per message taken off"
            )
            if stack is not None:
                line += f"; the stack so counted {num(stack)} CPU-ms per message"
                floor = results.get("floor", {}).get(step, {}).get("stack_cpu_ms")
                work = results.get(floors.WORK_FLOOR, {}).get(step)
                _, work_stack = embedder_counted(floors.WORK_FLOOR, work) if work else ({}, None)
                if floor and not variant.startswith("floor"):
                    line += f" ({stack / floor:.1f}x the floor"
                    line += (
                        f", {stack / work_stack:.1f}x the same-work floor's)" if work_stack else ")"
                    )
            lines.append(line)
    if not lines:
        return []
    return [
        "The embedder runs behind the pipeline (it may lag, and its CPU then falls after the "
        "window): the embedding queue over each step",
        "",
        *lines,
        "",
    ]


def inbox_buys(results: dict[str, Any]) -> list[str]:
    inbox, direct = results.get("inbox", {}), results.get("direct", {})
    lines = []
    for step in inbox:
        if step in direct:
            a, b = inbox[step], direct[step]
            lines.append(
                f"- {step}: ack p99 {num(a['ack_ms']['p99'])} ms with the inbox vs "
                f"{num(b['ack_ms']['p99'])} ms without ({b['errors']} errors); e2e p99 "
                f"{num(a['e2e_ms']['p99'])} vs {num(b['e2e_ms']['p99'])} ms"
            )
    return ["What the inbox buys (same load, same run):", "", *lines, ""] if lines else []


def crm_section(result: dict[str, Any]) -> list[str]:
    settings = result["settings"]
    lines = [
        f"{settings['contacts']:,} contacts / {settings['messages']:,} messages "
        f"(seeded in {settings['seed_seconds']} s); mix "
        + ", ".join(f"{route} {w}%" for route, w in settings["mix_percent"].items())
        + ". `saturation` and each route alone: closed loop (16 and 8 clients); the rates: "
        "open loop. As a browser asks: the company's own rate limit raised through the API "
        "(the limiter runs), `Accept-Encoding: "
        + str(settings.get("accept_encoding", "gzip, deflate"))
        + "`. The floor runs the same SQL (bench/floor_sql.py), no middleware, no gzip.",
        "",
    ]
    for variant, steps in costs.variants(result).items():
        lines += [
            api_variant_title(variant),
            "",
            *table(API_HEADER, api_rows(steps, "latency_ms", "rps", variant.startswith("floor"))),
        ]
    return lines + costs.cost_table(result, "request")


def followup_section(result: dict[str, Any]) -> list[str]:
    r = result["results"]
    return table(
        [
            "created",
            "received",
            "missing",
            "lateness p50",
            "p95",
            "p99",
            "max",
            "sent_at - scheduled_for p50",
            "p99",
        ],
        [
            [
                str(r["created"]),
                str(r["received"]),
                str(r["missing"]),
                *(num(r["lateness_ms"][q]) for q in ("p50", "p95", "p99", "max")),
                num(r["sent_at_minus_scheduled_for_ms"]["p50"]),
                num(r["sent_at_minus_scheduled_for_ms"]["p99"]),
            ]
        ],
    )


def search_section(result: dict[str, Any]) -> list[str]:
    summary = result["summary"]
    modes = [
        [mode, *(num((summary[f"{mode}_ms"] or {}).get(q)) for q in ("p50", "p95", "p99", "max"))]
        for mode in ("semantic", "hybrid", "keyword")
    ]
    return [
        f"`{result['settings']['command']}` (one query at a time, query embedding included; "
        f"ef_search {summary['ef_search']}); HNSW plan used: {summary['plan_uses_hnsw']}; local "
        f"embedding {num(summary['embeddings_per_second'])} messages/s (batch "
        f"{summary['embedding_batch']}). Recall is not taken from this run (its seed repeats "
        "a few texts, so exact neighbours tie): see hnsw-recall.",
        "",
        *table(["mode", "p50 ms", "p95", "p99", "max"], modes),
    ]


SECTIONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "webhook-ack": webhook_section,
    "pipeline": pipeline_section,
    "crm-read": crm_section,
    "search": search_section,
    "followup-timers": followup_section,
    "campaign": campaign_section,
}


def bottleneck(results: dict[str, dict[str, Any]]) -> list[str]:
    pipeline = results.get("pipeline") or {}
    found = pipeline.get("profile")
    if not found:
        return ["No profile in this run (`zapflow bench pipeline` records one with py-spy)."]
    step = pipeline["results"]["inbox"].get(found["step"], {})
    when = found.get("when") or f"the {found['step']} step"
    usage = step.get("cpu_percent") or {}
    busiest = sorted(
        ((v, k) for k, v in usage.items() if k not in ("machine_busy", "other")), reverse=True
    )[:4]
    lines = [
        f"The slowest path is the pipeline (webhook → inbox → relay → Temporal → persist → "
        f"SSE). CPU at {found['step']} (% of one core): "
        + ", ".join(f"{k} {v:.0f}" for v, k in busiest)
        + f", machine {num(usage.get('machine_busy'), 0)}. Profiled with "
        f"`{found['tool']}` for {found['seconds']:g} s during {when}.",
        "",
    ]
    for process in [k for k in found if k == "api" or k.startswith("worker")]:
        summary = found.get(process) or {}
        if not summary.get("samples"):
            continue
        lines += [
            f"**{process}** ({summary['samples']:,} samples while on CPU)",
            "",
            *table(
                ["on CPU (self)", "%"], [[f"`{n}`", str(p)] for n, p in summary["self_percent"][:8]]
            ),
            *table(
                ["zapflow function on the stack (inclusive)", "%"],
                [[f"`{n}`", str(p)] for n, p in summary["zapflow_inclusive_percent"][:8]],
            ),
        ]
    return lines


def environment(results: dict[str, dict[str, Any]], run_id: str) -> list[str]:
    any_result = next(iter(results.values()))
    m = any_result["machine"]
    git = any_result["git"]
    loads = [(name, r["load_average"]) for name, r in results.items()]
    busy = [name for name, la in loads if la["start"][0] > BUSY_LOAD]
    changes = git.get("uncommitted_changes") or []
    lines = [
        f"Run `{run_id}` · commit `{(git.get('commit') or '?')[:12]}`"
        + (f" + uncommitted changes in {len(changes)} files" if changes else "")
        + f" · {m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB · Python {m['python']}",
        "",
        "Load average (1/5/15 min) at the start → end of each scenario: "
        + "; ".join(f"{name} {la['start']} → {la['end']}" for name, la in loads),
        "",
    ]
    if busy:
        lines += [
            f"> **The machine was shared during this run** (1-minute load above "
            f"{BUSY_LOAD:g} at the start of {', '.join(busy)}): other work took CPU from "
            "zapflow, so these numbers are pessimistic; see `other` in the CPU columns.",
            "",
        ]
    stale = [name for name, r in results.items() if r.get("run_id") != run_id]
    if stale:
        lines += [f"> From earlier runs: {', '.join(stale)} (see their `started`).", ""]
    return lines


def before_note(before: dict[str, dict[str, Any]] | None, folder: Path | None) -> list[str]:
    if not before or folder is None:
        return []
    commits = sorted({(r.get("git") or {}).get("commit") or "?" for r in before.values()})
    return [
        f"Before: `{folder}` ({', '.join(before)}; commit {', '.join(c[:12] for c in commits)}), "
        "drawn beside this run in the `*-cpu-before-after.png` plots.",
        "",
    ]


def describe_steps(settings: dict[str, Any]) -> str:
    """`` · steps 20/s x 30 s, ...`` from a scenario's settings."""
    steps = []
    for step in settings.get("steps", []):
        if isinstance(step, dict):  # crm-read: named, with a rate or a concurrency
            what = f"{step['concurrency']} clients" if "concurrency" in step else step["name"]
            steps.append(f"{what} x {step['duration']:g} s")
        else:
            steps.append(f"{step[0]:g}/s x {step[1]:g} s")
    return f" · steps {', '.join(steps)}" if steps else ""


def write_report(
    results_dir: Path, report: Path, run_id: str, before_dir: Path | None = None
) -> None:
    """REPORT.md and its plots from the results in ``results_dir``; with ``before_dir``, the
    CPU-ms per unit plots put that earlier run's beside this one's."""
    results = load(results_dir)
    if not results:
        return
    run_id = run_id or max(results.values(), key=lambda r: r.get("finished", ""))["run_id"]
    before = load(before_dir) if before_dir else None
    plots = write_plots(results, report.parent / "plots", before)
    where = os.path.relpath(results_dir, report.parent)
    lines = [
        "# zapflow benchmark report",
        "",
        "Generated by `zapflow bench` (`make bench`) from `bench/results/*.json`; targets from "
        "DESIGN.md. Latencies count from each request's due time (open-loop load from a "
        "separate process). Reproduce: `make bench`; compare two runs: "
        "`zapflow bench compare A.json B.json`.",
        "",
        *environment(results, run_id),
        *before_note(before, before_dir),
        "## Summary",
        "",
        *table(
            ["what", "seed target", "zapflow goal", "measured", "met"],
            [[w, s, g, m, mark(ok)] for w, s, g, m, ok in summary_rows(results, results_dir)],
        ),
        "## Biggest bottleneck",
        "",
        *bottleneck(results),
        "",
    ]
    for name, result in results.items():
        lines += [
            f"## {name}",
            "",
            f"`{where}/{name}.json` · started {result['started']}, "
            f"{result.get('wall_seconds', '?')} s{describe_steps(result.get('settings') or {})}",
            "",
        ]
        if "results" not in result and "summary" not in result:
            lines += [status_of(results, name), ""]
            continue
        lines += SECTIONS[name](result)
        lines += [f"![{name}](plots/{png.name})" for png in plots.get(name, [])] + [""]
    if any(search_report.load(results_dir).values()):
        lines += search_report.sections(results_dir, where)
    report.write_text("\n".join(lines))
