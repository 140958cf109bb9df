"""What a result records about where it ran: git commit and local changes, the machine, load."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]


def git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    return done.stdout


def git_state() -> dict[str, Any]:
    """HEAD, and the files changed in the working tree (outside bench/) that the run used."""
    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {
        "commit": git("rev-parse", "HEAD").strip() or None,
        "uncommitted_changes": [path for path in changed if not path.startswith("bench/")],
    }


def machine() -> dict[str, Any]:
    memory = psutil.virtual_memory().total
    cpu_model = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def result_header(benchmark: str, args: object, **extra: Any) -> dict[str, Any]:
    """What a standalone bench script's result starts with: its name, where it ran, the load
    before it, and its arguments (an ``argparse.Namespace``)."""
    return {
        "benchmark": benchmark,
        "machine": machine(),
        "git": git_state(),
        **extra,
        "load_before": load_average(),
        "args": vars(args),
    }


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Record the load after the run and write the result as JSON."""
    result["load_after"] = load_average()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {path}")
