"""The floors zapflow is measured against in the same run, and zapflow's ratio to them.

- The API floor (bench/api_floor.py) beside ``zapflow api``: same URLs, same SQL, bare app.
- The Temporal floor (bench/temporal_floor.py) on the pipeline's own Temporal server, driven
  by the load generator process (``floor`` mode) at the pipeline's rates over its conversations.
- The same-work floor (bench/work_floor.py, variant ``floor-work``): zapflow's work per message
  that sets off nothing (durable inbox row, a relay's persist transaction, outbox, Redis stream,
  SSE, embedding; no Temporal) done barely, in three processes of its own, on the same stack.

Every cost is CPU-ms per unit of work (a message, a request) by process group, over the step's
window (for the pipeline: until the step's messages were all delivered). A variant's ``stack``
is the CPU of the processes it needs: zapflow's every process but the load generator; the
Temporal floor's its worker + client process and the Temporal server; the same-work floor's its
three processes, Postgres and Redis.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import uuid
from typing import Any

from zapflow.bench.stack import BenchStack, free_port, zapflow_command

API_FLOOR = "api-floor"  # its process group
TEMPORAL_FLOOR = "floor"  # the load generator's group when it plays the Temporal floor
WORK_FLOOR = "floor-work"  # the same-work floor's variant, and its process groups' prefix
WORK_FLOOR_ROLES = ("web", "worker", "embeddings")  # its processes: bench/work_floor.py
WORK_FLOOR_GROUPS = tuple(f"{WORK_FLOOR}:{role}" for role in WORK_FLOOR_ROLES)
NOT_ZAPFLOW = {"load_generator", "other", "machine_busy", API_FLOOR, TEMPORAL_FLOOR,
               *WORK_FLOOR_GROUPS}  # fmt: skip
FLOOR_STACK = (TEMPORAL_FLOOR, "temporal")
WORK_FLOOR_STACK = (*WORK_FLOOR_GROUPS, "postgres", "redis")


@functools.cache
def cli_supports(command: str, option: str) -> bool:
    """Whether ``zapflow <command> --help`` lists ``option`` (e.g. ``api --workers``, added by
    the API-performance work): the bench runs before and after it."""
    done = subprocess.run(
        zapflow_command(command, "--help"), capture_output=True, text=True, timeout=60
    )
    return option in done.stdout


def api_argv(processes: int) -> list[str]:
    """``zapflow api`` with ``processes`` processes (said explicitly where the option exists,
    whatever ``ZAPFLOW_API_WORKERS`` says)."""
    explicit = processes > 1 or cli_supports("api", "--workers")
    return zapflow_command("api", *(["--workers", str(processes)] if explicit else []))


def dev_worker_roles() -> list[str]:
    """The worker processes ``zapflow dev`` runs, by their ``--role``, so the pipeline measures
    the default stack."""
    from zapflow import devserver

    return list(devserver.DEV_WORKERS)


def api_process_counts(wanted: list[int]) -> tuple[list[int], list[int]]:
    """(the counts of API processes this tree can run, the ones skipped: no ``--workers``)."""
    if cli_supports("api", "--workers"):
        return wanted, []
    return [n for n in wanted if n == 1], [n for n in wanted if n != 1]


def start_api_floor(
    bench: BenchStack, company_id: str, instance_id: str | None, app_secret: str, processes: int
) -> str:
    """The API floor serving ``company_id`` with ``processes`` uvicorn workers; its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "zapflow.bench.api_floor", str(port)]
    env = {
        "ZAPFLOW_FLOOR_DATABASE_URL": bench.database_url,
        "ZAPFLOW_FLOOR_COMPANY_ID": company_id,
        "ZAPFLOW_FLOOR_INSTANCE_ID": instance_id or str(uuid.UUID(int=0)),
        "ZAPFLOW_FLOOR_APP_SECRET": app_secret,
    }
    base_url = f"http://127.0.0.1:{port}"
    bench.start(API_FLOOR, [*argv, *([str(processes)] if processes > 1 else [])], env=env)
    bench.wait_ready(f"{base_url}/readyz")
    return base_url


def start_work_floor(bench: BenchStack, company_id: str, instance_id: str, app_secret: str,
                     api_key: str) -> str:  # fmt: skip
    """The same-work floor's three processes for ``company_id``; its web process's base URL."""
    port = free_port()
    module = [sys.executable, "-m", "zapflow.bench.work_floor"]
    base_url = f"http://127.0.0.1:{port}"
    web = [*module, "web", str(port), company_id, instance_id, app_secret, api_key]
    bench.start(WORK_FLOOR_GROUPS[0], web, ready_url=f"{base_url}/readyz")  # makes its tables
    bench.start(WORK_FLOOR_GROUPS[1], [*module, "worker", company_id, instance_id])
    bench.start(WORK_FLOOR_GROUPS[2], [*module, "embeddings"])
    return base_url


def stop_work_floor(bench: BenchStack) -> None:
    for group in reversed(WORK_FLOOR_GROUPS):
        bench.stop_process(group)


def stack_ms(
    per_unit: dict[str, float], variant: str = "inbox", embedder: bool = True
) -> float | None:
    """CPU-ms per unit of the processes ``variant`` needs (see the module's docstring); without
    its embedding process unless ``embedder``."""
    if not per_unit:
        return None
    groups = [g for g in per_unit if in_stack(g, variant)]
    return round(sum(per_unit[g] for g in groups if embedder or "embeddings" not in g), 2)


def in_stack(group: str, variant: str) -> bool:
    """Whether the process group ``group`` is one ``variant`` needs."""
    if variant == WORK_FLOOR:
        return group in WORK_FLOOR_STACK
    if variant.startswith("floor"):
        return group in FLOOR_STACK
    return group not in NOT_ZAPFLOW


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def api_ratios(zapflow: dict[str, Any], floor: dict[str, Any], latency: str, rate: str) -> None:
    """Adds ``ratio_to_floor`` to each zapflow step the floor also ran: API CPU-ms per request,
    Postgres CPU-ms per request, p50/p99 latency and throughput (zapflow / floor)."""
    for name, z in zapflow.items():
        f = floor.get(name)
        if f is None:
            continue
        zc, fc = z.get("cpu_ms_per_unit") or {}, f.get("cpu_ms_per_unit") or {}
        z["ratio_to_floor"] = {
            "api_cpu_ms": ratio(zc.get("api"), fc.get(API_FLOOR)),
            "postgres_cpu_ms": ratio(zc.get("postgres"), fc.get("postgres")),
            "p50": ratio(z[latency]["p50"], f[latency]["p50"]),
            "p99": ratio(z[latency]["p99"], f[latency]["p99"]),
            "throughput": ratio(z.get(rate), f.get(rate)),
        }


def pipeline_ratios(results: dict[str, dict[str, Any]]) -> None:
    """Adds each step's ``stack`` CPU-ms per message (with and without its embedding process),
    and to zapflow's steps their ``ratio_to_floor`` against each floor variant (stack, stack
    without the embedders, Temporal server where that floor uses it, machine)."""
    floors = {v: s for v, s in results.items() if v.startswith("floor")}
    for variant, steps in results.items():
        for step in steps.values():
            per_unit = step.get("cpu_ms_per_unit") or {}
            step["stack_cpu_ms"] = stack_ms(per_unit, variant)
            step["stack_cpu_ms_without_embedder"] = stack_ms(per_unit, variant, embedder=False)
    for variant, steps in results.items():
        if variant in floors:
            continue
        for name, z in steps.items():
            zc = z.get("cpu_ms_per_unit") or {}
            z["ratio_to_floor"] = {
                floor: {
                    "stack": ratio(z["stack_cpu_ms"], f[name]["stack_cpu_ms"]),
                    "without_embedder": ratio(
                        z["stack_cpu_ms_without_embedder"], f[name]["stack_cpu_ms_without_embedder"]
                    ),
                    "temporal": ratio(
                        zc.get("temporal"), (f[name].get("cpu_ms_per_unit") or {}).get("temporal")
                    )
                    if in_stack("temporal", floor)
                    else None,
                    "machine": ratio(
                        zc.get("machine_busy"),
                        (f[name].get("cpu_ms_per_unit") or {}).get("machine_busy"),
                    ),
                }
                for floor, f in floors.items()
                if name in f
            }
