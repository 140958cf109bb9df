"""What the benchmarks share: a fresh embedded stack with zapflow's processes, readiness,
nearest-rank statistics, the machine and git facts a result records, and writing the result.

``BenchStack`` starts the embedded Postgres, Redis and headless Temporal (durable settings, as
``zapflow dev``) in a temporary folder on free ports, migrates, and runs ``zapflow api`` /
``zapflow worker`` as subprocesses (``ZAPFLOW_LOG_LEVEL=WARNING``, logs in the folder).
``stop()`` ends all of it, also after errors, Ctrl-C or SIGTERM (see ``install_signal_handlers``).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from zapflow.devstack import EmbeddedStack, ManagedProcess, StackConfig, free_port
from zapflow.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
READY_TIMEOUT = 90.0


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


# --- statistics ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(values: list[float]) -> dict[str, float | None]:
    stats = {f"p{q}": percentile(values, q) for q in (50, 95, 99)}
    stats["max"] = max(values) if values else None
    return {k: round(v, 2) if v is not None else None for k, v in stats.items()}


# --- environment --------------------------------------------------------------------------------


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
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
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
        "memory_bytes": memory,
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- processes ----------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def wait_ready(url: str, children: list[ManagedProcess]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        for child in children:
            if child.process is not None and child.process.poll() is not None:
                raise BenchError(f"`zapflow {child.name}` exited with {child.process.returncode}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.25)
    raise BenchError(f"{url} not ready after {READY_TIMEOUT:.0f} s: {last}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_signal_handlers() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so ``finally`` blocks stop what was started."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, _terminate)


class BenchStack:
    """A fresh embedded stack in a temporary folder on free ports, and zapflow's processes
    (``processes``: CLI commands such as ``api`` and ``worker``) pointed at it."""

    def __init__(
        self, processes: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="zapflow-bench-"))
        pg_port, redis_port, temporal_port, api_port = free_ports(4)
        self.stack = EmbeddedStack(
            StackConfig(
                data_dir=self.data_dir,
                postgres_port=pg_port,
                redis_port=redis_port,
                temporal_port=temporal_port,
                temporal_ui_port=None,
                durable=True,
            )
        )
        self.base_url = f"http://127.0.0.1:{api_port}"
        self.env = {
            **os.environ,
            **self.stack.settings_env(),
            "ZAPFLOW_API_PORT": str(api_port),
            "ZAPFLOW_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.children = [
            ManagedProcess(name, [sys.executable, "-m", "zapflow.cli", name],
                           self.stack.logs_dir / f"{name}.log", env=self.env)
            for name in processes
        ]  # fmt: skip

    def start_stack(self) -> None:
        """The embedded services, then the migrations."""
        print(f"starting the embedded stack in {self.data_dir}", flush=True)
        self.stack.start()
        upgrade(self.stack.database_url)

    def start_processes(self) -> None:
        """zapflow's processes, then wait until ``/readyz`` answers (it checks Temporal too)."""
        for child in self.children:
            child.start()  # in the main thread: the children's parent-death signal is tied to it
        wait_ready(f"{self.base_url}/readyz", self.children)

    def check_processes(self) -> None:
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                raise BenchError(f"`zapflow {child.name}` exited during the run")

    def psql(self, sql: str) -> str:
        """Run SQL on zapflow's database; ``-tA`` output (rows by line, columns by ``|``)."""
        return self.stack.psql(sql, database=self.stack.config.database)

    def print_logs(self) -> None:
        for child in self.children:
            if child.log_path is not None:
                print(f"--- {child.name}.log\n{tail(child.log_path)}", file=sys.stderr)

    def stop(self, *, keep: bool) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(self.children):
            child.stop()
        self.stack.stop()
        if keep:
            print(f"data and logs kept in {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
