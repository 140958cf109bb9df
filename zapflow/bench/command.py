"""The ``zapflow bench`` command: run scenarios, or compare two results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zapflow.bench import BUDGET_SECONDS, ON_REQUEST
from zapflow.bench import SCENARIO_NAMES as NAMES
from zapflow.bench.environment import REPO


def bench(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Scenarios to run [default: all but {', '.join(ON_REQUEST)}]: "
            f"{', '.join(NAMES)}; or `compare A.json "
            "B.json`; or `report` (write the report of --output-dir's results, run nothing)",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Seconds per load step, for every scenario "
            "[default: each scenario's own, see bench/README.md]",
        ),
    ] = None,
    rate: Annotated[
        list[float] | None,
        typer.Option(
            min=0.1,
            help="Arrival rate of a step (repeat for several) [default: each scenario's own steps]",
        ),
    ] = None,
    contacts: Annotated[int, typer.Option(min=1, help="crm-read: contacts to seed")] = 100_000,
    messages: Annotated[int, typer.Option(min=1, help="crm-read: messages to seed")] = 1_000_000,
    recipients: Annotated[
        int,
        typer.Option(
            min=10,
            help="campaign: recipients (fewer when they do not fit the run's budget at the rate)",
        ),
    ] = 100_000,
    output_dir: Annotated[
        Path, typer.Option(help="Where <scenario>.json go; REPORT.md goes to its parent")
    ] = REPO / "bench" / "results",
    api_processes: Annotated[
        list[int] | None,
        typer.Option(
            min=1,
            help="webhook-ack, crm-read: API processes (`zapflow api --workers N`), repeat for "
            "several; counts above 1 are skipped when this tree's `zapflow api` lacks --workers "
            "[default: 1 and 2]",
            show_default=False,
        ),
    ] = None,
    worker_role: Annotated[
        list[str] | None,
        typer.Option(
            help="pipeline: run one `zapflow worker --role R` per role given (repeat) [default: "
            "the workers `zapflow dev` runs]",
        ),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="pipeline: variants to run, in order: inbox (zapflow), floor (the Temporal "
            "floor: signal-with-start, a no-op local activity), floor-signal (the same with plain "
            "signals), floor-work (the same-work floor: zapflow's work per message that sets off "
            "nothing, done barely, bench/work_floor.py), inbox-ai (zapflow, the tenant's AI "
            "agent on: every message needs its workflow), direct (no inbox) "
            "[default: floor, floor-signal, inbox]",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Where the report goes [default: REPORT.md beside --output-dir]"),
    ] = None,
    before: Annotated[
        Path | None,
        typer.Option(help="An earlier run's results folder: its CPU-ms per unit plotted beside"),
    ] = None,
    no_profile: Annotated[bool, typer.Option("--no-profile", help="Skip py-spy")] = False,
    budget: Annotated[
        float, typer.Option(min=60, help="Seconds for the whole run; `search` stops there")
    ] = BUDGET_SECONDS,
) -> None:
    """Measure zapflow on a fresh embedded stack per scenario (open-loop load from a separate
    process), beside its floors in the same run (a bare Starlette + asyncpg app for the API, a
    minimal per-conversation workflow for Temporal, and on request the pipeline's work done
    barely), with CPU-ms per message or request of every process; write
    bench/results/<scenario>.json, bench/REPORT.md and its plots.

    `zapflow bench compare A.json B.json` prints B/A for every measurement both hold.
    """
    console = Console(stderr=True)
    names = scenarios or [name for name in NAMES if name not in ON_REQUEST]
    if names[0] == "compare":
        raise typer.Exit(compare(names[1:], console))
    if names[0] == "report":
        from zapflow.bench.report import write_report

        path = report or output_dir.parent / "REPORT.md"
        write_report(output_dir, path, "", before)
        console.print(f"report: {path}", highlight=False)
        raise typer.Exit(0)
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        console.print(
            f"[bold red]error:[/] unknown scenario {', '.join(unknown)}; "
            f"choose from {', '.join(NAMES)}",
            highlight=False,
        )
        raise typer.Exit(2)
    from zapflow.bench.campaign import campaign
    from zapflow.bench.runner import ON_REQUEST_VARIANTS, PIPELINE_VARIANTS, Options, run
    from zapflow.bench.scenarios import SCENARIOS

    wrong = [v for v in variant or [] if v not in (*PIPELINE_VARIANTS, *ON_REQUEST_VARIANTS)]
    if wrong:
        console.print(f"[bold red]error:[/] unknown pipeline variant {', '.join(wrong)}")
        raise typer.Exit(2)

    options = Options(
        scenarios=names,
        duration=duration,
        rates=rate,
        contacts=contacts,
        messages=messages,
        recipients=recipients,
        output_dir=output_dir,
        profile=not no_profile,
        budget=budget,
        report=report,
        before=before,
        api_processes=api_processes or [1, 2],
        worker_roles=worker_role,
        pipeline_variants=variant or list(PIPELINE_VARIANTS),
    )
    raise typer.Exit(run(options, {**SCENARIOS, "campaign": campaign}, console))


def compare(paths: list[str], console: Console) -> int:
    import orjson

    from zapflow.bench.stats import compare as ratios

    if len(paths) != 2:
        console.print("[bold red]error:[/] usage: zapflow bench compare A.json B.json")
        return 2
    try:
        a, b = (orjson.loads(Path(p).read_bytes()) for p in paths)
    except (OSError, orjson.JSONDecodeError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    rows = ratios(a, b)
    if not rows:
        console.print("[bold red]error:[/] the two files share no measurement", highlight=False)
        return 1
    table = Table(title=f"{paths[0]} (A) → {paths[1]} (B)", title_justify="left")
    for column in ("measurement", "A", "B", "B/A"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for key, left, right, ratio in rows:
        table.add_row(
            key, f"{left:,.2f}", f"{right:,.2f}", "-" if ratio is None else f"{ratio:.2f}x"
        )
    Console(width=max(120, console.width)).print(table)
    return 0
