"""``zapflow dev``: run the embedded stack, migrations, the API, the worker and the embedder until
Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

import httpx
from rich.console import Console

from zapflow.config import Settings
from zapflow.devstack import (
    EmbeddedStack,
    ManagedProcess,
    StackConfig,
    StackError,
    ensure_port_free,
)

READY_TIMEOUT_SECONDS = 60.0


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _zapflow_process(command: str, env: dict[str, str], *args: str) -> ManagedProcess:
    """A zapflow subcommand writing to this terminal."""
    argv = [sys.executable, "-m", "zapflow.cli", command, *args]
    return ManagedProcess(" ".join([command, *args]), argv, None, env=env)


def _wait_ready(url: str, children: list[ManagedProcess]) -> dict[str, object]:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        for child in children:
            if child.process is not None and child.process.poll() is not None:
                raise StackError(
                    f"`zapflow {child.name}` exited with code {child.process.returncode}"
                )
        try:
            response = httpx.get(url, timeout=2)
            last = response.json()
            if response.status_code == 200:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise StackError(f"not ready after {READY_TIMEOUT_SECONDS:.0f} s: {last}")


def _print_urls(console: Console, settings: Settings, stack: EmbeddedStack, started: float) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    console.print(f"\n[bold green]zapflow is ready[/] in {time.monotonic() - started:.1f} s\n")
    console.print(f"  API docs          {api}/docs")
    console.print(f"  Health            {api}/readyz")
    scrape = "with" if settings.metrics_token else "set"
    scrape += " ZAPFLOW_METRICS_TOKEN"
    console.print(f"  Metrics           {api}/metrics ({scrape})")
    console.print(f"  Temporal Web UI   {stack.temporal_ui_url}")
    console.print(f"  Postgres          {stack.database_url}")
    console.print(f"  Redis             {stack.redis_url}")
    console.print(f"  Data and logs     {stack.data_dir}\n")
    console.print("Press Ctrl-C to stop.\n")


# the worker processes `zapflow dev` runs, by role: the Temporal roles in one process (each on
# its own task queue and activity slots), the embedder in its own, so the model's CPU never
# delays the conversations' workflows (the bench measures this same set)
DEV_WORKERS = ("pipeline,ai,flows,campaigns", "embeddings")


def run_dev(settings: Settings, console: Console, *, with_worker: bool = True) -> int:
    started = time.monotonic()
    stack = EmbeddedStack(
        StackConfig(
            data_dir=settings.data_dir,
            postgres_port=settings.dev_postgres_port,
            redis_port=settings.dev_redis_port,
            temporal_port=settings.dev_temporal_port,
            temporal_ui_port=settings.dev_temporal_ui_port,
        )
    )
    env = {**os.environ, **stack.settings_env()}
    children = [_zapflow_process("api", env)]
    if with_worker:
        children += [_zapflow_process("worker", env, "--role", role) for role in DEV_WORKERS]
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ensure_port_free(settings.api_port, "the API", "ZAPFLOW_API_PORT")
        with console.status("starting the embedded stack") as status:
            stack.start(on_step=lambda name: status.update(f"starting {name}"))
            status.update("applying migrations")
            from zapflow.migrate import upgrade

            upgrade(stack.database_url)
            status.update("starting the API, the worker and the embedder")
            for child in children:
                child.start()
            _wait_ready(f"http://127.0.0.1:{settings.api_port}/readyz", children)
        _print_urls(console, settings, stack, started)
        return _supervise(children, console)
    except StackError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        console.print(f"logs: {stack.logs_dir}")
        return 1
    except _Stop:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        console.print("stopping…")
        for child in children:
            child.stop()
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.print("stopped.")


def _supervise(children: list[ManagedProcess], console: Console) -> int:
    while True:
        for child in children:
            assert child.process is not None
            code = child.process.poll()
            if code is not None:
                console.print(f"[bold red]error:[/] `zapflow {child.name}` exited with code {code}")
                return 1
        time.sleep(0.5)
