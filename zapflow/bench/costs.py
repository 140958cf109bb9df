"""What each unit of work costs, by process: the report's CPU-ms per message (pipeline) or per
request (webhook-ack, crm-read) tables, zapflow's ratio to its floor measured in the same run,
and the numbers the cost plots draw. The machine is shared, so these (CPU per unit, ratios) are
what compares across runs; latencies drift with the neighbours' load."""

from __future__ import annotations

from typing import Any

from zapflow.bench.markdown import num, table

NOT_PROCESSES = ("load_generator", "other", "machine_busy")
ORDER = (
    "api",
    "api-floor",
    "worker",
    "direct",
    "floor",
    "floor-work",
    "temporal",
    "postgres",
    "redis",
)


def variants(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A scenario's steps by variant; results written before variants were one ``zapflow``."""
    found = result.get("results") or {}
    if any(isinstance(step, dict) and "errors" in step for step in found.values()):
        return {"zapflow": found}
    return found


def groups(by_variant: dict[str, dict[str, Any]]) -> list[str]:
    """The process groups that used CPU in any step, in a fixed order (roles after their kind)."""
    seen = {
        group
        for steps in by_variant.values()
        for step in steps.values()
        for group in step.get("cpu_ms_per_unit") or {}
        if group not in NOT_PROCESSES
    }

    def rank(group: str) -> tuple[int, str]:
        kind = group.split(":")[0]
        return (ORDER.index(kind) if kind in ORDER else len(ORDER), group)

    return sorted(seen, key=rank)


def ratio_text(step: dict[str, Any]) -> str:
    ratios = step.get("ratio_to_floor") or {}
    if "api_cpu_ms" in ratios:  # an API step
        return (
            f"API CPU {num(ratios['api_cpu_ms'])}x, Postgres {num(ratios['postgres_cpu_ms'])}x, "
            f"p99 {num(ratios['p99'])}x"
        )
    parts = []
    for floor, r in ratios.items():
        details = [f"Temporal {num(r['temporal'])}x"] if r.get("temporal") is not None else []
        if "without_embedder" in r:
            details.append(f"without embedders {num(r['without_embedder'])}x")
        parts.append(
            f"{floor} {num(r['stack'])}x" + (f" ({', '.join(details)})" if details else "")
        )
    return "; ".join(parts)


def cost_table(result: dict[str, Any], unit: str) -> list[str]:
    """CPU-ms per ``unit`` of each process group, the stack's and the machine's, by variant and
    step, with the ratio to the floor of the same run."""
    by_variant = variants(result)
    columns = groups(by_variant)
    rows = []
    for variant, steps in by_variant.items():
        for name, step in steps.items():
            per_unit = step.get("cpu_ms_per_unit") or {}
            if not per_unit:
                continue
            rows.append([
                variant, name, *(num(per_unit.get(g), 2) if g in per_unit else "" for g in columns),
                num(step.get("stack_cpu_ms"), 1), num(per_unit.get("machine_busy"), 1),
                num(per_unit.get("other"), 1), ratio_text(step),
            ])  # fmt: skip
    if not rows:
        return []
    return [
        f"CPU-ms per {unit} by process group over each step's window (its load and, for the "
        "pipeline, until its last message was delivered); `stack`: the processes the variant "
        "needs; `machine`: the whole machine (/proc/stat); `other`: the machine minus the "
        "groups, i.e. the neighbours' work.",
        "",
        *table(["variant", "step", *columns, "stack", "machine", "other", "ratio to floor"], rows),
    ]


def bars(result: dict[str, Any]) -> tuple[list[str], list[str], list[list[float]]]:
    """(bar labels, process groups, CPU-ms per unit by group then bar) for a stacked chart."""
    by_variant = variants(result)
    columns = groups(by_variant)
    labels: list[str] = []
    heights: list[list[float]] = [[] for _ in columns]
    for variant, steps in by_variant.items():
        for name, step in steps.items():
            per_unit = step.get("cpu_ms_per_unit") or {}
            if per_unit:
                labels.append(f"{variant}\n{name}")
                for i, group in enumerate(columns):
                    heights[i].append(per_unit.get(group, 0.0))
    return labels, columns, heights
