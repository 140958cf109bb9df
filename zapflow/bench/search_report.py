"""The search parts of bench/REPORT.md (summary rows and sections), from the results of the
standalone search benchmarks: ``bench/hnsw_recall.py`` (recall and latency of the HNSW index),
``bench/search_quality.py`` (nDCG@10 and recall@10 per model and language on our evaluation set)
and ``bench/keyword_search.py`` (keyword search over 1M messages). They run apart from
``make bench`` (a 1M seed alone is a quarter of an hour of a core), each writing where it is
told; ``CURRENT`` names the files the report shows, newest first, so every figure it prints
comes from a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from zapflow.bench.markdown import Row, all_met, num, table, within
from zapflow.config import Settings
from zapflow.embeddings.e5 import MODEL_NAMES
from zapflow.embeddings.local import MODEL_NAME as MINILM

CURRENT: dict[str, tuple[str, ...]] = {
    "hnsw_recall": (
        "2026-12-02-s3-search/hnsw_1m.json",
        "2026-12-02-s3-search/hnsw_1m_ef.json",
        "2026-12-02-s3-search/hnsw_100k.json",
        "2026-12-02-s3-search/hnsw_100k_m32.json",
        "2026-12-02-s2-search/hnsw_100k.json",
        "2026-12-02-s2-search/hnsw_5k_real.json",
    ),
    "search_quality": ("2026-12-02-s2-search/search_quality.json",),
    "keyword_search": (
        "2026-12-02-s3-search/keyword_search_api.json",
        "2026-12-02-s3-search/keyword_search_api_before.json",
        "2026-12-02-s2-search/keyword_search_cpu.json",
        "2026-12-02-s2-search/keyword_search.json",
    ),
}
# the HNSW index zapflow builds (models/conversation_embedding.py: pgvector's defaults) and the
# ef_search its queries use
INDEX = {"m": 16, "ef_construction": 64}
EF_SEARCH: int = Settings.model_fields["search_ef_search"].default
GOAL_SIZE = 100_000  # the semantic search goal's size (DESIGN.md)
E5 = MODEL_NAMES["enpt"]


def load(results_dir: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per benchmark, its current results that exist: (path under results_dir, result)."""
    return {
        name: [
            (path, orjson.loads((results_dir / path).read_bytes()))
            for path in paths
            if (results_dir / path).exists()
        ]
        for name, paths in CURRENT.items()
    }


def load_text(result: dict[str, Any]) -> str:
    return f"load {result['load_before'][0]:g} → {result['load_after'][0]:g}"


def command_text(script: str, result: dict[str, Any]) -> str:
    """The command that wrote the result, from its recorded arguments."""
    parts = [f"bench/{script}"]
    for key, value in (result.get("args") or {}).items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [f"{flag} {v}" for v in value]
        elif value not in (None, False):
            parts.append(f"{flag} {value}")
    return "`" + " ".join(parts) + "`"


def commit_text(result: dict[str, Any]) -> str:
    git = result.get("git") or {}
    changed = git.get("uncommitted_changes") or []
    return f"commit {(git.get('commit') or '?')[:12]}" + (
        f" + uncommitted changes in {', '.join(f'`{c}`' for c in changed)}" if changed else ""
    )


def chosen_point(
    found: list[tuple[str, dict[str, Any]]], size: int
) -> tuple[str, dict[str, Any], Any] | None:
    """The newest measurement of zapflow's index and ef_search at ``size`` vectors."""
    points = [
        (path, result, point)
        for path, result in found
        if result["recall"]["vectors_queried_company"] == size
        for built in result["recall"]["builds"]
        if {k: built[k] for k in INDEX} == INDEX
        for point in built.get("curve", [])
        if point["ef_search"] == EF_SEARCH
    ]
    return points[0] if points else None


def semantic_row(found: list[tuple[str, dict[str, Any]]]) -> Row:
    what, seed, goal = "semantic search", "—", "p99 ≤ 50 ms, recall@10 ≥ 0.95 at 100k messages"
    chosen = chosen_point(found, GOAL_SIZE)
    if chosen is None:
        return what, seed, goal, "not measured", None
    path, result, point = chosen
    wall, cpu = point["latency_ms"], point.get("backend_cpu_ms") or {}
    measured = (
        f"recall@10 {num(point['recall_at_10'], 3)} (ties counted, tenant-filtered; m "
        f"{INDEX['m']} / ef_construction {INDEX['ef_construction']}, ef_search {EF_SEARCH}) "
        f"over {result['recall']['vectors_queried_company']:,} vectors; per query: wall p50 "
        f"{num(wall['p50'])} / p99 {num(wall['p99'])} ms"
        + (
            f", Postgres backend CPU p50 {num(cpu['p50'])} / p99 {num(cpu['p99'])} ms"
            if cpu
            else ""
        )
        + f" ({load_text(result)}; `{path}`)"
    )
    return (
        what,
        seed,
        goal,
        measured,
        all_met(point["recall_at_10"] >= 0.95, within(wall["p99"], 50)),
    )


def quality_row(found: list[tuple[str, dict[str, Any]]]) -> Row:
    what, seed, goal = (
        "search quality, Portuguese",
        "—",
        "hybrid nDCG@10 of the default model clearly above MiniLM's on our set",
    )
    if not found:
        return what, seed, goal, "not measured", None
    path, result = found[0]
    models = result["quality"]["pt"]["models"]
    e5, minilm = (models[m]["hybrid"]["ndcg_at_10"] for m in (E5, MINILM))
    measured = (
        f"hybrid nDCG@10 e5 {num(e5, 3)} vs MiniLM {num(minilm, 3)} "
        f"(+{num(e5 - minilm, 3)}, x{num(e5 / minilm, 2)}; `{path}`)"
    )
    return what, seed, goal, measured, e5 > minilm


def keyword_row(found: list[tuple[str, dict[str, Any]]]) -> Row:
    """Through the API when measured so (the goal's wall time), else the SQL alone."""
    what, seed, goal = "keyword search, 1M messages", "—", "p99 ≤ 100 ms for common words"
    for variant in ("api", "bounded"):
        measured_so = [(p, r) for p, r in found if f"common_{variant}_ms" in r["latency"]]
        if measured_so:
            break
    else:
        return what, seed, goal, "not measured", None
    path, result = measured_so[0]
    common = result["latency"][f"common_{variant}_ms"]
    ordinary = result["latency"][f"ordinary_{variant}_ms"]
    sql = result["latency"].get("common_bounded_ms", {}).get("backend_cpu_ms")
    measured = (
        ("`GET /search?mode=keyword`" if variant == "api" else "SQL only, not through the API")
        + f": common words wall p50 {num(common['p50'])} / p99 {num(common['p99'])} ms"
        + (f", API {num(common['api_cpu_ms_per_query'])} + " if variant == "api" else ", ")
        + f"Postgres {num(common['postgres_cpu_ms_per_query'])} CPU-ms per query"
        + (f" (the SQL's backend CPU p99 {num(sql['p99'])} ms)" if sql else "")
        + f"; ordinary words wall p99 {num(ordinary['p99'])} ms ({load_text(result)}; `{path}`)"
    )
    return what, seed, goal, measured, within(common["p99"], 100)


def summary_rows(results_dir: Path) -> list[Row]:
    found = load(results_dir)
    return [
        semantic_row(found["hnsw_recall"]),
        quality_row(found["search_quality"]),
        keyword_row(found["keyword_search"]),
    ]


HNSW_HEADER = [
    "m / ef_construction", "build wall s / Postgres CPU s / MB", "ef_search",
    "recall@10 (ties counted)", "by id", "queries < 0.9", "backend CPU-ms p50 / p99",
    "Postgres CPU-ms / query", "wall p50 / p99 ms",
]  # fmt: skip


def hnsw_rows(built: dict[str, Any]) -> list[list[str]]:
    rows = []
    for i, p in enumerate(built.get("curve", [])):
        cpu = p.get("backend_cpu_ms")
        rows.append([
            f"{built['m']} / {built['ef_construction']}" if i == 0 else "",
            f"{built['build_seconds']} / {built['build_postgres_cpu_seconds']} / "
            f"{built['index_mb']}" if i == 0 else "",
            str(p["ef_search"]), num(p["recall_at_10"], 3), num(p["recall_at_10_by_id"], 3),
            str(p["queries_below_0_9"]),
            f"{num(cpu['p50'])} / {num(cpu['p99'])}" if cpu else "-",
            num(p["postgres_cpu_ms_per_query"], 2),
            f"{num(p['latency_ms']['p50'], 0)} / {num(p['latency_ms']['p99'], 0)}",
        ])  # fmt: skip
    return rows


def same_recall(found: list[tuple[str, dict[str, Any]]], size: int, target: float) -> list[str]:
    """Per build measured at ``size`` vectors (newest first), the cheapest ef_search reaching
    ``target``: its recall and CPU per query."""
    out = []
    builds = [
        (path, built)
        for path, result in found
        if result["recall"]["vectors_queried_company"] == size
        for built in result["recall"]["builds"]
    ]
    for path, built in builds:
        reached = [p for p in built.get("curve", []) if p["recall_at_10"] >= target]
        if reached:
            p = min(reached, key=lambda p: p["postgres_cpu_ms_per_query"])
            out.append(
                f"m {built['m']} / {built['ef_construction']} at ef_search {p['ef_search']} "
                f"({num(p['recall_at_10'], 3)}, {num(p['postgres_cpu_ms_per_query'], 2)} ms, "
                f"`{Path(path).parent}`)"
            )
    return out


def hnsw_section(found: list[tuple[str, dict[str, Any]]], where: str) -> list[str]:
    if not found:
        return ["not measured", ""]
    lines = [
        "`bench/hnsw_recall.py` (vectors from `bench/hnsw_corpus.py`; plot "
        "`bench/plots/hnsw_recall.png`). Real e5 vectors (multilingual-e5-small q4-enpt, "
        "passages) of distinct texts; past them a stated synthetic extension (each extra vector a "
        "normalized random convex combination of three real ones). Queries: the evaluation set's "
        "(pt and en) as e5 queries, through `services.search.semantic_ranking` (the SQL of "
        "`GET /search`: company and model filter, joins, LIMIT 50, relaxed iterative scan), "
        "sequentially, after an untimed pass. A result is correct when its exact cosine distance "
        "is ≤ the 10th exact distance (ties counted); two companies share the index. Backend "
        "CPU: the query's Postgres backend (`/proc/<pid>/schedstat`), what it costs on an idle "
        "core; wall: on the shared 2 cores.",
        "",
    ]
    for path, result in found:
        r = result["recall"]
        lines += [
            f"**{r['vectors_queried_company']:,} vectors** (`{where}/{path}`; other company "
            f"{r['vectors_other_company']:,}; real {r['real_vectors']:,}, synthetic "
            f"{r['synthetic_vectors']:,}; {r['queries']} queries; {load_text(result)}; "
            f"{commit_text(result)}; {command_text('hnsw_recall.py', result)})",
            "",
            *table(HNSW_HEADER, [row for built in r["builds"] for row in hnsw_rows(built)]),
        ]
    sizes = sorted({r["recall"]["vectors_queried_company"] for _, r in found}, reverse=True)
    for size in sizes:
        chosen = chosen_point(found, size)
        if chosen is None:
            continue
        _, result, point = chosen
        others = same_recall(found, size, point["recall_at_10"])
        lines += [
            f"zapflow's index: m {INDEX['m']} / ef_construction {INDEX['ef_construction']}, "
            f"ef_search {EF_SEARCH}: recall@10 {num(point['recall_at_10'], 3)} at "
            f"{result['recall']['vectors_queried_company']:,} vectors for "
            f"{num(point['postgres_cpu_ms_per_query'], 2)} Postgres CPU-ms per query, wall p99 "
            f"{num(point['latency_ms']['p99'])} ms. The same recall, cheapest per build: "
            f"{'; '.join(others)}.",
            "",
        ]
    return lines


def quality_section(found: list[tuple[str, dict[str, Any]]], where: str) -> list[str]:
    if not found:
        return ["not measured", ""]
    path, result = found[0]
    cost = {c["model"]: c for c in result["cost"].values()}
    rows = []
    for language, data in result["quality"].items():
        for model, modes in data["models"].items():
            c = cost.get(model) or {}
            rows.append([
                model, f"{language} ({data['queries']} q, {data['messages']} msgs)",
                *(num(modes[m]["ndcg_at_10"], 3) if m in modes else "" for m in ("semantic",)),
                num(modes["semantic"]["recall_at_10"], 3) if "semantic" in modes else "",
                num(modes["hybrid"]["ndcg_at_10"], 3), num(modes["hybrid"]["recall_at_10"], 3),
                num(modes["keyword"]["ndcg_at_10"], 3) if "keyword" in modes else "",
                num(c.get("per_cpu_second")),
                f"{num(c.get('rss_mb'))} ({num(c.get('model_rss_mb'))})",
            ])  # fmt: skip
    return [
        f"`{where}/{path}` · {command_text('search_quality.py', result)} · "
        f"{load_text(result)} · {commit_text(result)}. Our set `bench/search_eval/{{pt,en}}.yaml` "
        "(paraphrases, synonyms, typos, WhatsApp abbreviations); every query through "
        "`services.search.search_messages(limit=10)`; keyword alone needs no model (shown on "
        "MiniLM's row). Cost: messages per CPU-second of one process embedding the set at batch "
        "32; RSS: its peak (the model's part).",
        "",
        *table(
            [
                "model",
                "language",
                "semantic nDCG@10",
                "semantic recall@10",
                "hybrid nDCG@10",
                "hybrid recall@10",
                "keyword nDCG@10",
                "msgs per CPU-s",
                "RSS MB (model)",
            ],
            rows,
        ),
    ]


def keyword_section(found: list[tuple[str, dict[str, Any]]], where: str) -> list[str]:
    if not found:
        return ["not measured", ""]
    lines = [
        "`bench/keyword_search.py`: one company of `seed-demo` messages; each query 5 times, "
        "sequentially. `bounded` is `keyword_ranking` as built (the newest 1,000 matches "
        "ranked); `unbounded` every match ranked; `expression` the query before the stored "
        "column; `api` the whole `GET /api/v1/search?mode=keyword&limit=20` on one `zapflow "
        "api` process (CPU per request: the API's and Postgres' over the batch). Common: the 20 "
        "words in most messages (stop words left out); ordinary: 10 customer-service words and "
        "phrases. EXPLAIN ANALYZE of three plans in each result.",
        "",
    ]
    for path, result in found:
        latency = result["latency"]
        rows = []
        for key, value in latency.items():
            if key.endswith("_ms"):
                cpu = value.get("backend_cpu_ms")
                rows.append([
                    key.removesuffix("_ms").replace("_", " "),
                    num(value["postgres_cpu_ms_per_query"]),
                    num(value.get("api_cpu_ms_per_query")),
                    f"{num(cpu['p50'])} / {num(cpu['p95'])} / {num(cpu['p99'])}" if cpu else "-",
                    f"{num(value['p50'], 0)} / {num(value['p99'], 0)}",
                ])  # fmt: skip
        lines += [
            f"`{where}/{path}` ({latency['messages']:,} messages, seeded in "
            f"{result['seed_seconds']:g} s; {load_text(result)}; {commit_text(result)}; "
            f"{command_text('keyword_search.py', result)}"
            + (
                "; bounded top 10 as high as the full ranking's 10th: "
                f"{num(latency['agreement_at_10_mean'], 2)} of results)"
                if latency.get("agreement_at_10_mean") is not None
                else ")"
            ),
            "",
            *table(
                [
                    "queries / variant",
                    "Postgres CPU-ms / query",
                    "API CPU-ms / query",
                    "backend CPU p50 / p95 / p99 ms",
                    "wall p50 / p99 ms",
                ],
                rows,
            ),
        ]
    return lines


def sections(results_dir: Path, where: str) -> list[str]:
    """The three search sections; ``where``: the results folder as the report links it."""
    found = load(results_dir)
    return [
        "## hnsw-recall (tie-aware, tenant-filtered, distinct texts)",
        "",
        *hnsw_section(found["hnsw_recall"], where),
        "## search-quality (Portuguese and English, per model)",
        "",
        *quality_section(found["search_quality"], where),
        "## keyword-search (1M messages)",
        "",
        *keyword_section(found["keyword_search"], where),
    ]
