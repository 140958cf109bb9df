"""Markdown helpers of bench/REPORT.md: numbers, goal checks, tables."""

from __future__ import annotations

from typing import Any

# a summary row: what, seed target, goal, measured, met
Row = tuple[str, str, str, str, bool | None]


def num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def within(value: Any, limit: float) -> bool | None:
    return None if value is None else value <= limit


def all_met(*checks: bool | None) -> bool | None:
    return None if any(c is None for c in checks) else all(checks)


def mark(met: bool | None) -> str:
    return {True: "✅", False: "❌", None: "-"}[met]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
