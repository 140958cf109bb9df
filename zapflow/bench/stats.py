"""Nearest-rank statistics of latency samples, per-window series for the plots, and ratios of
two results for ``zapflow bench compare``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

QUANTILES = (50, 95, 99)


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Iterable[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 / max, rounded to 0.01."""
    ordered = sorted(values)
    stats = {f"p{q}": percentile(ordered, q) for q in QUANTILES}
    stats["max"] = ordered[-1] if ordered else None
    return {k: None if v is None else round(v, 2) for k, v in stats.items()}


def windows(
    points: Iterable[tuple[float, float]], width: float = 1.0, start: float = 0.0
) -> list[dict[str, Any]]:
    """(time, value) points grouped by windows of ``width`` seconds from ``start``: each window's
    start, count and percentiles (a rising p99 line is a backlog, a spike a stall)."""
    grouped: dict[int, list[float]] = {}
    for t, value in points:
        grouped.setdefault(int((t - start) // width), []).append(value)
    return [
        {"t": round(start + k * width, 3), "n": len(v), **summarize(v)}
        for k, v in sorted(grouped.items())
    ]


def counts_per_window(
    times: Iterable[float], width: float = 1.0, start: float = 0.0
) -> list[dict[str, float]]:
    """How many times fell in each window, as a rate per second (throughput lines)."""
    grouped: dict[int, int] = {}
    for t in times:
        key = int((t - start) // width)
        grouped[key] = grouped.get(key, 0) + 1
    if not grouped:
        return []
    return [
        {"t": round(start + k * width, 3), "per_s": round(grouped.get(k, 0) / width, 2)}
        for k in range(min(grouped), max(grouped) + 1)
    ]


def flatten(result: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a result as dotted keys; lists (series, samples) are left out."""
    found: dict[str, float] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            found[name] = float(value)
        elif isinstance(value, Mapping):
            found.update(flatten(value, name + "."))
    return found


COMPARED_SECTIONS = ("results", "summary", "memory")


def compare(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> list[tuple[str, float, float, float | None]]:
    """(key, A, B, B/A) for each numeric measurement both results hold, in A's order."""
    left = {k: v for s in COMPARED_SECTIONS for k, v in flatten(a.get(s, {}), s + ".").items()}
    right = {k: v for s in COMPARED_SECTIONS for k, v in flatten(b.get(s, {}), s + ".").items()}
    return [
        (key, value, right[key], right[key] / value if value else None)
        for key, value in left.items()
        if key in right
    ]
