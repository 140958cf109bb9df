"""What the standalone scripts in bench/ share, on top of ``zapflow/bench/``: a fresh embedded
stack with zapflow's processes named up front, readiness, nearest-rank statistics, the machine
and git facts a result records, and writing the result.

``BenchStack(["api", "worker"])`` starts the embedded Postgres, Redis and headless Temporal in a
temporary folder on free ports (``start_stack``), then ``zapflow api`` / ``zapflow worker``
(``start_processes``, which waits for ``/readyz``); ``stop()`` ends all of it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zapflow.bench import stack
from zapflow.bench.environment import REPO, git_state, load_average, machine
from zapflow.bench.stack import BenchError, free_ports, install_signal_handlers, tail
from zapflow.bench.stats import percentile, summarize

RESULTS = REPO / "bench" / "results"

__all__ = [
    "RESULTS", "BenchError", "BenchStack", "free_ports", "git_state", "install_signal_handlers",
    "load_average", "machine", "percentile", "run_async", "summarize", "tail", "write_json",
]  # fmt: skip


def run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


class BenchStack(stack.BenchStack):
    """The stack, and the zapflow CLI commands (``processes``) to run against it."""

    def __init__(
        self, processes: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(extra_env)
        self.process_names = list(processes)

    def start_stack(self) -> None:
        print(f"starting the embedded stack in {self.data_dir}", flush=True)
        super().start_stack()

    def start_processes(self) -> None:
        for name in self.process_names:
            self.start(name)
        self.wait_ready(f"{self.base_url}/readyz")

    def print_logs(self) -> None:
        for name in self.children:
            print(f"--- {name}.log\n{tail(self.stack.logs_dir / f'{name}.log')}", file=sys.stderr)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
