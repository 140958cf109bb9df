"""HNSW recall and latency over ``ef_search``, measured right: distinct texts, ties counted by
distance, the tenant-filtered query the API runs, at a given number of vectors.

    nice .venv/bin/python bench/hnsw_recall.py --size 100000 --build 16:64 --build 24:64 \
        --output bench/results/2026-12-02-s2-search/hnsw_100k.json
    .venv/bin/python bench/hnsw_recall.py --plot RESULT.json... --output bench/plots/hnsw_recall.png

A long run splits in shorter ones (a shared machine's slots) with ``--data-dir DIR``: the stack
lives in DIR and is kept; a run finds there what an earlier one seeded, loaded and built (the
index is reused when its m and ef_construction are those asked, and its build figures with it);
``--prepare-only`` seeds, loads and builds (only the ``--build`` given), and measures nothing.

The vectors: the real e5 vectors ``bench/hnsw_corpus.py`` embedded (distinct texts: the seed's
templates filled many ways, the evaluation set's messages, joins of two or three of them), as
many as it finished; past them, a stated synthetic extension: each extra vector a random convex
combination (Dirichlet(1, 1, 1) weights) of three random real vectors, normalized (distinct, and
inside the region real messages occupy, as a joined text's vector lies near its parts'). The
queries: the evaluation set's 306 queries (Portuguese and English) embedded as e5 queries.

On a fresh embedded stack (Postgres only): ``zapflow seed-demo`` twice, the queried company with
``--size`` messages and another with a tenth of that, so the index holds both and the company
filter is real; each message gets one vector (``conversation_embeddings`` rows of the default
model, by binary COPY). Per ``--build`` (m:ef_construction) the HNSW index is rebuilt
(``maintenance_work_mem`` 4 GB, one parallel worker; its wall time and Postgres CPU recorded),
then for every ``--ef`` each query runs once through ``services.search.semantic_ranking`` (the
SQL of ``GET /search``: company and model filter, joins, ``LIMIT 50``, ``hnsw.ef_search`` and
``hnsw.iterative_scan = relaxed_order`` set by ``use_ef_search``), sequentially, one
transaction each, after one untimed pass. Recall@10, tie-aware: a returned message counts when
its exact cosine distance is at most the 10th smallest exact distance over the company's
vectors (numpy, float32, the same arithmetic for both sides); also the plain recall by id. The
build runs niced (10); the measurement passes at normal priority. Per query: its wall time (from
the SQL's start to its rows, on a connection already checked out) and its backend's CPU time
(``/proc/<pid>/schedstat``: what the query costs on an idle core, whatever the neighbours'
load), as percentiles; and Postgres CPU-ms per query over the pass (all its processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import psutil
from pgvector.asyncpg import register_vector
from sqlalchemy import text

from zapflow.bench.environment import result_header, write_result
from zapflow.bench.stack import BenchStack, on_cpu_ms, tree_cpu_seconds
from zapflow.bench.stats import summarize
from zapflow.config import load_settings
from zapflow.db import SessionFactory, create_engine, session_factory, transaction
from zapflow.embeddings.e5 import MODEL_NAMES
from zapflow.services.search import CANDIDATES, SearchFilters, semantic_ranking, use_ef_search

CACHE = Path("/tmp/zapflow-hnsw-corpus")
MODEL = MODEL_NAMES["enpt"]
K = 10
EFS = (20, 40, 64, 100, 150, 200, 300, 400)
STATE = "hnsw_state.json"  # in --data-dir: what the kept data holds
COLUMNS = ["company_id", "conversation_id", "message_id", "contact_id", "embedding", "model"]


def vectors(total: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``total`` unit vectors, the real ones first (shuffled), and how many are real."""
    real = np.concatenate([np.load(p) for p in sorted(CACHE.glob("chunk_*[0-9].npy"))])
    real = real[rng.permutation(len(real))][:total]
    parts = [real]
    for start in range(len(real), total, 100_000):
        n = min(100_000, total - start)
        picked = real[rng.integers(0, len(real), size=(n, 3))]
        mixed = np.einsum("nk,nkd->nd", rng.dirichlet((1.0, 1.0, 1.0), size=n), picked)
        parts.append(mixed / np.linalg.norm(mixed, axis=1, keepdims=True))
    return np.concatenate(parts).astype(np.float32), len(real)


async def load(
    url: str, company_id: uuid.UUID, matrix: np.ndarray, loaded: bool
) -> list[uuid.UUID]:
    """One vector per message of the company (as many as both have; unless ``loaded`` by an
    earlier run on the same data); their message ids, in the vectors' order."""
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await register_vector(connection)
        rows = await connection.fetch(
            "SELECT m.id, m.conversation_id, c.contact_id FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE m.company_id = $1 ORDER BY m.id LIMIT $2",
            company_id,
            len(matrix),
        )
        if loaded:
            return [r[0] for r in rows]
        # loaded without the index (each row inserted into the graph: many times the build)
        await connection.execute("DROP INDEX IF EXISTS idx_embeddings_vector")
        records = ((company_id, r[1], r[0], r[2], matrix[i], MODEL) for i, r in enumerate(rows))
        await connection.copy_records_to_table(
            "conversation_embeddings", records=records, columns=COLUMNS
        )
        return [r[0] for r in rows]
    finally:
        await connection.close()


async def build(
    bench: BenchStack, m: int, ef_construction: int, state: dict[str, Any]
) -> dict[str, Any]:
    """The index with these parameters: built (niced), or the one an earlier run on this data
    built (its figures from ``state``, the data folder's record)."""
    key = f"{m}:{ef_construction}"
    connection = await asyncpg.connect(bench.database_url.replace("+asyncpg", ""))
    options = await connection.fetchval(
        "SELECT reloptions FROM pg_class WHERE relname = 'idx_embeddings_vector'"
    )
    if sorted(options or []) == sorted([f"m={m}", f"ef_construction={ef_construction}"]):
        await connection.close()
        return {**state["builds"][key], "reused": True}
    bench.renice(10)
    postgres = bench.processes()["postgres"][0]
    try:
        await connection.execute("DROP INDEX IF EXISTS idx_embeddings_vector")
        await connection.execute("SET maintenance_work_mem = '4GB'")
        await connection.execute("SET max_parallel_maintenance_workers = 1")
        cpu, start = tree_cpu_seconds(postgres), time.monotonic()
        await connection.execute(
            "CREATE INDEX idx_embeddings_vector ON conversation_embeddings"
            f" USING hnsw (embedding vector_cosine_ops) WITH (m = {m},"
            f" ef_construction = {ef_construction})"
        )
        done = {
            "build_seconds": round(time.monotonic() - start, 1),
            "build_postgres_cpu_seconds": round(tree_cpu_seconds(postgres) - cpu, 1),
        }
        await connection.execute("ANALYZE conversation_embeddings")
        size = await connection.fetchval("SELECT pg_relation_size('idx_embeddings_vector')")
        state.setdefault("builds", {})[key] = {**done, "index_mb": round(size / 2**20, 1)}
        return state["builds"][key]
    finally:
        await connection.close()
        bench.renice(0)


def exact(matrix: np.ndarray, queries: np.ndarray) -> list[tuple[np.ndarray, float, set[int]]]:
    """Per query: every vector's cosine distance, the 10th smallest, the 10 nearest rows."""
    out = []
    for q in queries:
        distances = 1.0 - matrix @ q
        nearest = np.argpartition(distances, K)[:K]
        out.append((distances, float(distances[nearest].max()), {int(i) for i in nearest}))
    return out


async def sweep(
    sessions: SessionFactory,
    postgres: psutil.Process,
    company_id: uuid.UUID,
    queries: np.ndarray,
    truth: list[tuple[np.ndarray, float, set[int]]],
    row_of: dict[uuid.UUID, int],
    ef: int,
) -> dict[str, Any]:
    async def run(q: np.ndarray) -> tuple[float, float, list[uuid.UUID]]:
        vector = q.tolist()
        async with transaction(sessions) as session:
            pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
            cpu, start = on_cpu_ms(pid), time.perf_counter()
            await use_ef_search(session, ef)
            ranked = await semantic_ranking(
                session, company_id, MODEL, vector, SearchFilters(), CANDIDATES
            )
            wall, cpu = (time.perf_counter() - start) * 1000, on_cpu_ms(pid) - cpu
        return wall, cpu, [m for m, _ in ranked[:K]]

    for q in queries:  # the untimed pass: pages in memory
        await run(q)
    times, cpus, tie_aware, by_id = [], [], [], []
    cpu = tree_cpu_seconds(postgres)
    for q, (distances, tenth, nearest) in zip(queries, truth, strict=True):
        ms, backend, top = await run(q)
        rows = [row_of[m] for m in top]
        times.append(ms)
        cpus.append(backend)
        tie_aware.append(sum(distances[r] <= tenth for r in rows) / K)
        by_id.append(len(nearest.intersection(rows)) / K)
    return {
        "ef_search": ef,
        "recall_at_10": round(float(np.mean(tie_aware)), 4),
        "recall_at_10_by_id": round(float(np.mean(by_id)), 4),
        "queries_below_0_9": int(sum(r < 0.9 for r in tie_aware)),
        "latency_ms": summarize(times),
        "backend_cpu_ms": summarize(cpus),
        "postgres_cpu_ms_per_query": round(
            (tree_cpu_seconds(postgres) - cpu) * 1000 / len(queries), 2
        ),
    }


async def plan_uses_index(sessions: SessionFactory, company_id: uuid.UUID, q: np.ndarray) -> bool:
    async with transaction(sessions) as session:
        await use_ef_search(session, 100)
        vector = "[" + ",".join(f"{x:.6f}" for x in q) + "]"
        rows = await session.execute(
            text(
                "EXPLAIN SELECT e.message_id FROM conversation_embeddings e"
                " JOIN messages m ON m.id = e.message_id"
                " JOIN conversations c ON c.id = m.conversation_id"
                " WHERE e.company_id = :c AND e.model = :m"
                " ORDER BY e.embedding <=> CAST(:v AS vector) LIMIT 50"
            ),
            {"c": company_id, "m": MODEL, "v": vector},
        )
        return any("idx_embeddings_vector" in r[0] for r in rows)


async def measure(
    bench: BenchStack, state: dict[str, Any], args: argparse.Namespace, result: dict[str, Any]
) -> None:
    """Fills ``result["recall"]``, written after each build (a long run keeps what it finished);
    ``state`` is what the data holds (seeded companies, vectors loaded, indexes built)."""
    rng = np.random.default_rng(11)
    other = args.size // 10
    matrix, real = vectors(args.size + other, rng)
    queries = np.load(CACHE / "queries.npy")
    companies = [uuid.UUID(c) for c in state["companies"]]
    loaded = state.get("loaded", False)
    ids = await load(bench.database_url, companies[0], matrix[: args.size], loaded)
    await load(bench.database_url, companies[1], matrix[args.size :], loaded)
    state["loaded"] = True
    save_state(args, state)
    ours = matrix[: len(ids)]
    row_of = {m: i for i, m in enumerate(ids)}
    truth = exact(ours, queries)
    out: dict[str, Any] = {
        "vectors_queried_company": len(ids), "vectors_other_company": other,
        "real_vectors": real, "synthetic_vectors": len(matrix) - real,
        "queries": len(queries), "builds": [],
    }  # fmt: skip
    result["recall"] = out
    engine = create_engine(load_settings(database_url=bench.database_url), pool_size=2)
    sessions = session_factory(engine)
    postgres = bench.processes()["postgres"][0]
    try:
        for spec in args.build:
            m, ef_construction = (int(x) for x in spec.split(":"))
            built = {
                "m": m,
                "ef_construction": ef_construction,
                **await build(bench, m, ef_construction, state),
            }
            save_state(args, state)
            built["plan_uses_hnsw"] = await plan_uses_index(sessions, companies[0], queries[0])
            print(f"built {built}", flush=True)
            if args.prepare_only:
                continue
            built["curve"] = []
            for ef in args.ef:
                point = await sweep(sessions, postgres, companies[0], queries, truth, row_of, ef)
                print(f"  {point}", flush=True)
                built["curve"].append(point)
            out["builds"].append(built)
            write_result(Path(args.output), result)
    finally:
        await engine.dispose()


def plot(results: list[Path], png: Path) -> None:
    """Recall@10 (tie-aware) against p99 latency and against Postgres CPU-ms per query, one
    line per size and build, its points labelled with ef_search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for path in results:
        recall = json.loads(path.read_text())["recall"]
        size = recall["vectors_queried_company"]
        for built in recall["builds"]:
            label = (
                f"{size:,} vectors, m={built['m']}, ef_construction={built['ef_construction']}"
                f" ({path.parent.name})"
            )
            curve = built["curve"]
            ys = [p["recall_at_10"] for p in curve]
            for ax, xs in (
                (axes[0], [p["latency_ms"]["p99"] for p in curve]),
                (axes[1], [p["postgres_cpu_ms_per_query"] for p in curve]),
            ):
                ax.plot(xs, ys, marker="o", label=label)
                for x, y, p in zip(xs, ys, curve, strict=True):
                    ax.annotate(str(p["ef_search"]), (x, y), fontsize=7)
    axes[0].set_xlabel("p99 latency, ms (shared 2-core machine: pessimistic)")
    axes[1].set_xlabel("Postgres CPU-ms per query (mean)")
    axes[0].set_ylabel("recall@10 vs exact, ties counted (tenant-filtered)")
    for ax in axes:
        ax.axhline(0.95, color="grey", linestyle=":")
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    figure.suptitle("HNSW recall over ef_search (labels) per build")
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)


def save_state(args: argparse.Namespace, state: dict[str, Any]) -> None:
    if args.data_dir:
        (args.data_dir / STATE).write_text(json.dumps(state, indent=2))


def seed(bench: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """The two companies' messages (``seed-demo``), unless the data folder has them already."""
    path = args.data_dir / STATE if args.data_dir else None
    if path is not None and path.exists():
        state: dict[str, Any] = json.loads(path.read_text())
        if state["size"] != args.size:
            raise SystemExit(f"{args.data_dir} holds {state['size']} vectors, not {args.size}")
        return state
    bench.renice(10)
    start = time.monotonic()
    companies = []
    for messages in (args.size, args.size // 10):
        seeded = bench.run_cli(
            "seed-demo", "--contacts", str(max(100, messages // 20)), "--messages",
            str(messages), "--seed", "42", "--company-name", f"bench {messages}",
            timeout=7200,
        )  # fmt: skip
        companies.append(seeded["company_id"])
    state = {"size": args.size, "companies": companies}
    state["seed_seconds"] = round(time.monotonic() - start, 1)
    save_state(args, state)
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, nargs="+", help="result files to plot to --output")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--build", action="append", default=None, help="m:ef_construction")
    parser.add_argument("--ef", type=int, action="append", default=None)
    parser.add_argument("--output", required=True)
    parser.add_argument("--data-dir", type=Path, help="keep the stack here, reuse what it holds")
    parser.add_argument("--prepare-only", action="store_true", help="seed, load, build; no query")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, Path(args.output))
        return 0
    args.build = args.build or ([] if args.prepare_only else ["16:64"])
    args.ef = args.ef or list(EFS)
    result = result_header("hnsw_recall", args)
    bench = BenchStack(data_dir=args.data_dir)
    try:
        bench.start_stack()
        state = seed(bench, args)
        result["seed_seconds"] = state["seed_seconds"]
        asyncio.run(measure(bench, state, args, result))
    finally:
        bench.stop(keep=args.data_dir is not None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
