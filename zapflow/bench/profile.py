"""Sampling profiles of zapflow's processes during a scenario (py-spy, non-blocking), reduced to
where the CPU went: the functions most often on top of the stack, and zapflow's own functions
by inclusive time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

SAMPLE_RATE = 50  # per second: cheap enough not to distort what it measures
LINE = re.compile(r":\d+\)$")
ENTRY_POINTS = ("(zapflow/cli.py)", "(zapflow/bench/direct.py)")  # on every stack: says nothing


def py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def start(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of ``pid`` for ``seconds`` into ``output`` (collapsed stacks); None
    when py-spy is not installed (``pip install -e '.[bench]'``)."""
    exe = py_spy()
    if exe is None:
        return None
    argv = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(SAMPLE_RATE),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(output),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def frame_name(frame: str) -> str:
    """``handle (zapflow/api/x.py:12)`` → ``handle (zapflow/api/x.py)``: one entry per function."""
    return LINE.sub(")", frame.strip())


def summarize(collapsed: str, top: int = 12) -> dict[str, Any]:
    """From py-spy's collapsed stacks (``frame;frame;... count`` per line): the share of
    samples each function was running (self) and was on the stack (inclusive, zapflow's own)."""
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            if "zapflow/" in frame and not frame.endswith(ENTRY_POINTS):
                inclusive[frame] += n

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self_percent": share(own) if total else [],
        "zapflow_inclusive_percent": share(inclusive) if total else [],
    }


def finish(process: subprocess.Popen[bytes] | None, output: Path) -> dict[str, Any] | None:
    if process is None:
        return None
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if not output.exists():
        return {"error": f"py-spy exited with {process.returncode} and wrote nothing"}
    return summarize(output.read_text(errors="replace"))
