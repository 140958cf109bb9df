"""The report's plots (matplotlib, Agg): latency percentiles, throughput and backlog over time
per scenario variant, and CPU-ms per unit of work per process: zapflow beside its floor, and
this run beside an earlier one (before / after)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zapflow.bench import costs

UNITS = {"pipeline": "message", "webhook-ack": "request", "crm-read": "request"}


def write_plots(
    results: dict[str, dict[str, Any]],
    folder: Path,
    before: dict[str, dict[str, Any]] | None = None,
) -> dict[str, list[Path]]:
    """Per scenario: CPU-ms per unit by process (zapflow and its floor; beside ``before``'s
    when given), then per variant latency percentiles, throughput and backlog over time."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name, result in results.items():
        unit = UNITS.get(name)
        if unit and costs.bars(result)[0]:
            path = folder / f"{name}-cpu.png"
            stacked(*costs.bars(result), f"{name}: CPU-ms per {unit}, zapflow and floor", path)
            written.setdefault(name, []).append(path)
        if unit and before and name in before:
            path = folder / f"{name}-cpu-before-after.png"
            if before_after(before[name], result, f"{name}: CPU-ms per {unit}", path):
                written.setdefault(name, []).append(path)
        series = result.get("series")
        if not series:
            continue
        nested = all(isinstance(v, dict) and "latency" not in v for v in series.values()) and any(
            isinstance(s, dict) and "latency" in s for v in series.values() for s in v.values()
        )
        for variant, steps in series.items() if nested else [("", series)]:
            path = folder / f"{name}{'-' + variant.replace(' ', '') if variant else ''}.png"
            plot(steps, f"{name} {variant}".strip(), path)
            written.setdefault(name, []).append(path)
    return written


def stacked(
    labels: list[str], groups: list[str], heights: list[list[float]], title: str, path: Path
) -> None:
    """Bars stacked by process group, one per (variant, step)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(labels) + 3), 5.5))
    bottom = [0.0] * len(labels)
    # past ten groups (a before/after plot of runs with other process groups) the default cycle
    # would give two groups one colour
    colors = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for n, (group, values) in enumerate(zip(groups, heights, strict=True)):
        ax.bar(range(len(labels)), values, bottom=bottom, label=group, color=colors(n % colors.N))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for x, total in enumerate(bottom):
        ax.annotate(f"{total:.1f}", (x, total), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("CPU-ms per unit of work")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def before_after(before: dict[str, Any], after: dict[str, Any], title: str, path: Path) -> bool:
    """The (variant, step) bars both runs hold, before beside after; False if none."""
    b_labels, b_groups, b_heights = costs.bars(before)
    a_labels, a_groups, a_heights = costs.bars(after)
    both = [label for label in a_labels if label in b_labels]
    if not both:
        return False
    groups = [*a_groups, *(g for g in b_groups if g not in a_groups)]
    labels: list[str] = []
    heights: list[list[float]] = [[] for _ in groups]
    for label in both:
        for when, run_labels, run_groups, run_heights in (
            ("before", b_labels, b_groups, b_heights),
            ("after", a_labels, a_groups, a_heights),
        ):
            labels.append(f"{when}\n{label}")
            at = run_labels.index(label)
            for i, group in enumerate(groups):
                found = group in run_groups
                heights[i].append(run_heights[run_groups.index(group)][at] if found else 0.0)
    stacked(labels, groups, heights, f"{title}: before and after", path)
    return True


def plot(steps: dict[str, dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    has_backlog = any(s.get("backlog") for s in steps.values())
    fig, axes = plt.subplots(
        3 if has_backlog else 2, 1, figsize=(11, 9 if has_backlog else 6.5), sharex=True
    )
    offset = 0.0
    for n, (name, s) in enumerate(steps.items()):
        lat = s.get("latency", [])
        for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            axes[0].plot(
                [offset + w["t"] for w in lat],
                [w[q] for w in lat],
                style,
                color=f"C{n}",
                label=f"{name} {q}",
            )
        for key, style in (("sent", "--"), ("done", "-")):
            points = s.get(key, [])
            axes[1].plot(
                [offset + p["t"] for p in points],
                [p["per_s"] for p in points],
                style,
                color=f"C{n}",
                label=f"{name} {key}",
            )
        if has_backlog:
            backlog = s.get("backlog", [])
            lines = ((1, "-", "inbox"), (2, ":", "Temporal"), (3, "--", "embedding queue"))
            for column, style, label in lines:
                axes[2].plot(
                    [offset + b[0] for b in backlog if len(b) > column],
                    [b[column] for b in backlog if len(b) > column],
                    style,
                    color=f"C{n}",
                    label=f"{name} {label}",
                )
        ends = [w["t"] for w in lat] + [p["t"] for p in s.get("done", [])]
        offset += max(ends, default=0.0) + 2
    axes[0].set_ylabel("latency ms (log)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("per second")
    if has_backlog:
        axes[2].set_ylabel("backlog (messages)")
    axes[-1].set_xlabel("seconds (steps one after another)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=4, loc="best")
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
