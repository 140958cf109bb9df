"""A fresh embedded stack for one scenario, zapflow's processes on it, and their resource use.

``BenchStack`` starts the embedded Postgres, Redis and headless Temporal (durable settings, as
``zapflow dev``) in a temporary folder on free ports, migrates, and runs zapflow's processes
(``zapflow api``, ``zapflow worker``, ...) as subprocesses with ``ZAPFLOW_LOG_LEVEL=WARNING`` and
their logs in the folder. ``stop()`` ends all of it, also after errors, Ctrl-C or SIGTERM.
``ResourceWatch`` reads the CPU of each process group (by role, from the command line: every
api and worker process, the Temporal server, all Postgres backends, Redis) and of the machine
over a measurement window, and their peak RSS.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

from zapflow.devstack import EmbeddedStack, ManagedProcess, StackConfig, free_port
from zapflow.migrate import upgrade

READY_TIMEOUT = 240.0  # a shared, loaded machine starts `zapflow api --workers 2` slowly
WORKER_START_SECONDS = 10.0  # a restarted worker connects to Temporal and Postgres
SAMPLE_EVERY = 0.25
MIB = 2**20

# The company, webhook and stream limiters still run on every request of a benchmark but never
# refuse one: a run measures the pipeline and the API, not the operator's limits (the per-key
# limit is raised by the scenarios that need it, ZAPFLOW_RATE_LIMIT_PER_MINUTE).
NEVER_REFUSED = {
    f"ZAPFLOW_{name}": str(100_000_000)
    for name in (
        "RATE_LIMIT_MAX_PER_MINUTE",
        "COMPANY_RATE_LIMIT_PER_MINUTE",
        "WEBHOOK_RATE_LIMIT_PER_MINUTE",
        "STREAMS_PER_KEY",
        "STREAMS_PER_COMPANY",
    )
}


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_signal_handlers() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so ``finally`` blocks stop what was started."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, _terminate)


def zapflow_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "zapflow.cli", *args]


class BenchStack:
    """The embedded services in a temporary folder, and named processes pointed at them."""

    def __init__(
        self, extra_env: Mapping[str, str] | None = None, data_dir: Path | None = None
    ) -> None:
        """In a new temporary folder, or in ``data_dir`` (made if missing), whose Postgres data a
        long benchmark reuses across runs, each shorter than the whole (``stop(keep=True)``)."""
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="zapflow-bench-"))
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
        self.api_port = api_port
        self.base_url = f"http://127.0.0.1:{api_port}"
        self.env = {
            **os.environ,
            **self.stack.settings_env(),
            "ZAPFLOW_API_PORT": str(api_port),
            "ZAPFLOW_LOG_LEVEL": "WARNING",
            **NEVER_REFUSED,
            **(extra_env or {}),
        }
        self.children: dict[str, ManagedProcess] = {}
        self.worker_roles: list[str] = []  # as start_workers last started them

    @property
    def database_url(self) -> str:
        return self.stack.database_url

    def start_stack(self) -> None:
        """The embedded services, then the migrations."""
        self.stack.start()
        upgrade(self.stack.database_url)

    def start(
        self,
        name: str,
        argv: Sequence[str] | None = None,
        ready_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> psutil.Process:
        """Start ``zapflow <name>`` (or ``argv``), optionally waiting until ``ready_url`` is 200."""
        child = ManagedProcess(
            name,
            list(argv or zapflow_command(name)),
            self.stack.logs_dir / f"{name}.log",
            env={**self.env, **(env or {})},
        )
        self.children[name] = child
        process = child.start()  # in the main thread: the parent-death signal is tied to it
        if ready_url:
            self.wait_ready(ready_url)
        return psutil.Process(process.pid)

    def start_api(
        self, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
    ) -> psutil.Process:
        return self.start("api", argv, ready_url=f"{self.base_url}/readyz", env=env)

    def start_workers(
        self, roles: Sequence[str] | None, env: Mapping[str, str] | None = None
    ) -> None:
        """``zapflow worker`` once, or once per role (``zapflow worker --role R``)."""
        self.worker_roles = list(roles or [])
        if not roles:
            self.start("worker", env=env)
            return
        for role in roles:
            self.start(f"worker-{role}", zapflow_command("worker", "--role", role), env=env)

    def restart_workers(self, roles: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """The workers stopped, then started again with ``env`` added to theirs; returns once
        they had ``WORKER_START_SECONDS`` to connect (no traffic waits for them meanwhile)."""
        for name in [n for n in self.children if n == "worker" or n.startswith("worker-")]:
            self.stop_process(name)
        self.start_workers(roles, env)
        time.sleep(WORKER_START_SECONDS)

    def stop_process(self, name: str) -> None:
        """End one of the processes ``start`` started (to start it again differently)."""
        child = self.children.pop(name, None)
        if child is not None:
            child.stop()

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last: object = None
        while time.monotonic() < deadline:
            self.check_processes()
            try:
                response = httpx.get(url, timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.25)
        raise BenchError(f"{url} not ready after {READY_TIMEOUT:.0f} s: {last}")

    def check_processes(self) -> None:
        for child in self.children.values():
            if child.process is not None and child.process.poll() is not None:
                raise BenchError(
                    f"`{child.name}` exited with code {child.process.returncode}:\n"
                    + tail(child.log_path or Path())
                )

    def run_cli(self, *args: str, timeout: float = 120) -> Any:
        """``zapflow <args> --json`` against this stack; its JSON answer (last stdout line)."""
        done = subprocess.run(
            zapflow_command(*args, "--json"),
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise BenchError(f"`zapflow {' '.join(args)}` failed with code {done.returncode}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def psql(self, sql: str) -> str:
        """Run SQL on zapflow's database; ``-tA`` output (rows by line, columns by ``|``)."""
        return self.stack.psql(sql, database=self.stack.config.database)

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Process groups whose resources a scenario reports."""
        groups: dict[str, list[psutil.Process]] = {}
        for name, child in self.children.items():
            if child.process is not None:
                with contextlib.suppress(psutil.Error):
                    process = psutil.Process(child.process.pid)
                    groups.setdefault(role_of(process.cmdline(), name), []).append(process)
        for name, managed in (
            ("postgres", self.stack.postgres),
            ("redis", self.stack.redis),
            ("temporal", self.stack.temporal),
        ):
            if managed.process is not None:
                groups[name] = [psutil.Process(managed.process.pid)]
        return groups

    def renice(self, value: int) -> None:
        """Set the niceness of this process and every Postgres process (new backends fork from
        the postmaster): heavy steps (seeding, index builds) run niced on a shared machine, and
        latency is then measured at normal priority, so it is the query's, not the scheduler's."""
        postmaster = self.processes()["postgres"][0]
        for process in [psutil.Process(), postmaster, *postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                process.nice(value)

    def log_lines(self, name: str) -> int:
        """Lines a process logged at WARNING or above (slow requests, errors): 0 is the norm."""
        try:
            with (self.stack.logs_dir / f"{name}.log").open(errors="replace") as log:
                return sum(1 for _ in log)
        except OSError:
            return 0

    def stop(self, *, keep: bool = False) -> None:
        """Everything, in reverse order; a second Ctrl-C or SIGTERM does not cut it short."""
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        for child in reversed(list(self.children.values())):
            child.stop()
        self.stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if keep:
            print(f"data and logs kept in {self.data_dir}", file=sys.stderr)
        else:  # as root the Postgres data lives outside data_dir (devstack): removed with it
            self.stack.remove_data()


def role_of(cmdline: Sequence[str], default: str) -> str:
    """A process's group, from its command line, so it holds whatever processes a tree runs:
    ``zapflow api`` → ``api``, ``zapflow worker`` → ``worker``, ``zapflow worker --role
    pipeline`` → ``worker:pipeline`` (several processes of one role add up); else ``default``."""
    args = None
    for i, arg in enumerate(cmdline):
        if arg == "zapflow.cli" or Path(arg).name == "zapflow":
            args = list(cmdline[i + 1 :])
            break
    if not args or args[0] not in ("api", "worker"):
        return default
    roles = [
        value
        for flag, value in zip(args, [*args[1:], ""], strict=True)
        if flag == "--role" and value
    ] + [arg.removeprefix("--role=") for arg in args if arg.startswith("--role=")]
    return args[0] + (":" + "+".join(roles) if roles else "")


def on_cpu_ms(pid: int) -> float:
    """Milliseconds a process has run on a CPU (``/proc/<pid>/schedstat``, nanoseconds): a
    Postgres backend's, before and after one query, is that query's cost on an idle core."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6


def tree_cpu_seconds(root: psutil.Process) -> float:
    """User + system CPU seconds of ``root`` and all its descendants, alive or ended: each
    process's own time (``/proc/<pid>/stat`` utime + stime) plus that of the children it has
    reaped (cutime + cstime), so a Postgres backend that ended within a window still counts."""
    total = 0.0
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for process in members:
        with contextlib.suppress(psutil.Error):
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy, summed over cores (``/proc/stat``)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class ResourceWatch:
    """CPU of each process group (its processes' whole trees) and of the machine over a window,
    and the peak RSS of each group's main processes, sampled in a background thread.

    ``stop()`` gives CPU seconds by group (what per-unit costs divide) and the same as % of one
    core (200 is two cores busy); ``other`` is the machine's busy time outside the groups."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_forever, daemon=True)
        self._start_cpu: dict[str, float] = {}
        self._start_busy = 0.0
        self._started = 0.0

    def __enter__(self) -> ResourceWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _cpu(self) -> dict[str, float]:
        return {
            group: sum(tree_cpu_seconds(p) for p in roots)
            for group, roots in list(self.groups.items())
        }

    def _sample_forever(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.sample()

    def sample(self) -> None:
        for group, processes in list(self.groups.items()):
            rss = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    rss += process.memory_info().rss
            with self._lock:
                self._peaks[group] = max(self._peaks.get(group, 0), rss)

    def start(self) -> None:
        """Begin a window: CPU counters now, peaks reset."""
        with self._lock:
            self._peaks = {}
        self.sample()
        self._start_cpu = self._cpu()
        self._start_busy = machine_busy_seconds()
        self._started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        """The window's CPU use (seconds and % of one core) and peak RSS in MiB, by group."""
        self.sample()
        wall = max(time.perf_counter() - self._started, 1e-9)
        end = self._cpu()
        seconds = {g: max(0.0, used - self._start_cpu.get(g, used)) for g, used in end.items()}
        busy = machine_busy_seconds() - self._start_busy
        seconds["other"] = max(0.0, busy - sum(seconds.values()))
        seconds["machine_busy"] = busy
        with self._lock:
            peaks = {g: round(rss / MIB, 1) for g, rss in self._peaks.items()}
        return {
            "cpu_seconds": {g: round(v, 3) for g, v in seconds.items()},
            "cpu_percent": {g: round(100 * v / wall, 1) for g, v in seconds.items()},
            "peak_rss_mib": peaks,
            "seconds": round(wall, 2),
        }


def per_unit_ms(usage: dict[str, Any], units: int) -> dict[str, float]:
    """CPU-ms per unit of work (message, request) by group, from a window's ``cpu_seconds``."""
    if not units:
        return {}
    return {g: round(1000 * s / units, 2) for g, s in (usage.get("cpu_seconds") or {}).items()}
