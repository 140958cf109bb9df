"""``zapflow bench``: runs the chosen scenarios one after another, each on its own fresh stack,
drives the load generator process with a progress bar, writes each result to
``bench/results/<scenario>.json`` and then ``bench/REPORT.md`` with its plots."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from zapflow.bench import BUDGET_SECONDS
from zapflow.bench.environment import REPO, git_state, load_average, machine, timestamp
from zapflow.bench.stack import BenchError, BenchStack, ResourceWatch, install_signal_handlers

RESULTS = REPO / "bench" / "results"
# The floors first: their workflows are terminated when they end, while zapflow's backlog after a
# rate it did not sustain would still be draining (on the shared Temporal) into the next variant.
PIPELINE_VARIANTS = ("floor", "floor-signal", "inbox")
# the same-work floor; zapflow with every message needing its workflow; no inbox
ON_REQUEST_VARIANTS = ("floor-work", "inbox-ai", "direct")


@dataclass
class Options:
    scenarios: list[str]
    duration: float | None = None  # seconds per step, overriding each scenario's default
    rates: list[float] | None = None  # overriding each scenario's rate steps
    contacts: int = 100_000  # crm-read's seed
    messages: int = 1_000_000
    recipients: int = 100_000  # campaign's audience (scaled down to fit the run's budget)
    output_dir: Path = RESULTS
    report: Path | None = None  # default: output_dir/../REPORT.md
    before: Path | None = None  # an earlier run's results, plotted beside this one's
    profile: bool = True
    budget: float = BUDGET_SECONDS
    api_processes: list[int] = field(default_factory=lambda: [1])  # `zapflow api --workers N`
    worker_roles: list[str] | None = None  # one `zapflow worker --role R` each; None: one worker
    pipeline_variants: list[str] = field(default_factory=lambda: list(PIPELINE_VARIANTS))

    def steps(
        self, default_rates: list[float], default_duration: float
    ) -> list[tuple[float, float]]:
        return [(rate, self.duration or default_duration) for rate in self.rates or default_rates]


@dataclass
class StepWindow:
    """Resource use per load-generator step: the window opens when a step's first progress line
    arrives and closes at the next step or the end."""

    watch: ResourceWatch
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: str | None = None

    def progress(self, step: str | None) -> None:
        if step is None or step == self.current:
            return
        self.close()
        self.current = step
        self.watch.start()

    def close(self) -> None:
        if self.current is not None:
            self.usage[self.current] = self.watch.stop()
        self.current = None


class Context:
    """What a scenario uses from the runner: options, console, the load generator."""

    def __init__(self, options: Options, console: Console) -> None:
        self.options = options
        self.console = console
        self.deadline = time.monotonic() + options.budget

    def seconds_left(self) -> float:
        """Of the run's budget; a scenario of open-ended length stops there (at least 60 s)."""
        return max(60.0, self.deadline - time.monotonic())

    def load(
        self,
        bench: BenchStack,
        plan: dict[str, Any],
        title: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        group: str = "load_generator",
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the load generator process on ``plan`` (``on_update`` sees each progress line);
        its raw result and the resource use of each of its steps (CPU by group, peak RSS).
        ``group`` names the load generator's own CPU (``floor`` when it plays the floor)."""
        with tempfile.TemporaryDirectory(prefix="zapflow-loadgen-") as folder:
            plan_path, out_path = Path(folder, "plan.json"), Path(folder, "out.json")
            plan_path.write_bytes(orjson.dumps(plan))
            argv = [sys.executable, "-m", "zapflow.bench.loadgen", str(plan_path), str(out_path)]
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=bench.env)
            try:
                groups = bench.processes()
                groups[group] = [psutil.Process(process.pid)]
                with ResourceWatch(groups) as watch:
                    windows = StepWindow(watch)
                    self._follow(process, windows, title, on_update)
                    windows.close()
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait()
            if process.returncode != 0 or not out_path.exists():
                raise BenchError(f"the load generator failed with code {process.returncode}")
            return orjson.loads(out_path.read_bytes()), windows.usage

    def _follow(
        self,
        process: subprocess.Popen[str],
        windows: StepWindow,
        title: str,
        on_update: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        columns = (
            TextColumn("{task.description:<28}"),
            BarColumn(bar_width=30),
            TextColumn("{task.completed:>7,.0f}/{task.total:<7,.0f}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
        )
        assert process.stdout is not None
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(title, total=1, info="starting")
            for line in process.stdout:
                try:
                    update = orjson.loads(line)
                except orjson.JSONDecodeError:  # a library's print (Temporal's core logs)
                    self.console.print(line.rstrip(), style="dim", highlight=False, markup=False)
                    continue
                windows.progress(update.get("step"))
                if on_update:
                    on_update(update)
                label = " ".join(str(update[k]) for k in ("step", "phase") if k in update)
                bar.update(
                    task,
                    completed=update.get("done", 0),
                    total=update.get("total", 1),
                    description=f"{title} {label}",
                    info=label,
                )


ScenarioFn = Callable[[Context], dict[str, Any]]


def envelope(
    name: str, started: str, load_start: list[float], body: dict[str, Any]
) -> dict[str, Any]:
    """The facts every result records, around what the scenario measured."""
    return {
        "scenario": name,
        "run_id": RUN_ID,
        "started": started,
        "finished": timestamp(),
        "git": git_state(),
        "machine": machine(),
        "load_average": {"start": load_start, "end": load_average()},
        **body,
    }


RUN_ID = uuid.uuid4().hex[:12]


def run(options: Options, scenarios: dict[str, ScenarioFn], console: Console) -> int:
    """Every chosen scenario, then the report; exit code 0 if all ran, 1 if one failed."""
    from zapflow.bench.report import write_report

    install_signal_handlers()
    options.output_dir.mkdir(parents=True, exist_ok=True)
    context = Context(options, console)
    failed = []
    began = time.monotonic()
    for name in options.scenarios:
        console.rule(f"[bold]{name}")
        started, load_start, t = timestamp(), load_average(), time.monotonic()
        try:
            body = scenarios[name](context)
        except BenchError as exc:
            console.print(f"[bold red]{name} failed:[/] {exc}", highlight=False)
            failed.append(name)
            body = {"status": "failed", "error": str(exc)}
        except KeyboardInterrupt:
            console.print("interrupted")
            return 130
        result = envelope(name, started, load_start, body)
        result["wall_seconds"] = round(time.monotonic() - t, 1)
        path = options.output_dir / f"{name}.json"
        path.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        console.print(
            f"{name}: {body.get('status', 'ok')} in {result['wall_seconds']:.0f} s → {path}",
            highlight=False,
        )
    report = options.report or options.output_dir.parent / "REPORT.md"
    write_report(options.output_dir, report, RUN_ID, options.before)
    console.print(f"report: {report} · total {time.monotonic() - began:.0f} s", highlight=False)
    return 1 if failed else 0
