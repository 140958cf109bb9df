"""``zapflow flows ...``: try a flow document from the command line (no stack needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from zapflow.config import get_settings
from zapflow.egress import egress_policy
from zapflow.flows.language import load_document
from zapflow.flows.simulate import simulate
from zapflow.flows.validation import InvalidFlow, parse_flow

TIMEOUT_REPLY = "!timeout"
flows_app = typer.Typer(help="Flows: validate and simulate flow documents.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@flows_app.command("simulate")
def simulate_command(
    file: Annotated[Path, typer.Argument(help="A flow document, YAML or JSON", exists=True)],
    reply: Annotated[
        list[str] | None,
        typer.Option(
            "--reply",
            "-r",
            help=f"The customer's next reply (repeat it, in order); {TIMEOUT_REPLY} plays an "
            "ask's timeout",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole result as JSON")] = False,
) -> None:
    """Run the flow on scripted replies and print its transcript: nothing is sent, nothing
    is stored. Exit code 1 when the run fails, 2 when the document is invalid."""
    try:
        egress = egress_policy(get_settings().egress_allowed)
        flow = parse_flow(load_document(file.read_text()), egress)
    except InvalidFlow as exc:
        for issue in exc.issues:
            where = f"{issue.node_id}.{issue.field}" if issue.node_id else issue.field
            err.print(f"[red]{where}[/]: {issue.message} ({issue.code})", highlight=False)
        raise typer.Exit(2) from None
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    replies = [None if r == TIMEOUT_REPLY else r for r in reply or []]
    result = asyncio.run(simulate(flow, replies))
    if as_json:
        print(orjson.dumps(result.__dict__, option=orjson.OPT_INDENT_2).decode())
    else:
        for entry in result.transcript:
            out.print(_line(entry), highlight=False, soft_wrap=True)
        variables = orjson.dumps(result.variables).decode()
        out.print(f"\n{result.status}; variables: {variables}", highlight=False, soft_wrap=True)
    raise typer.Exit(1 if result.status == "failed" else 0)


def _line(entry: dict[str, Any]) -> str:
    details = {k: v for k, v in entry.items() if k not in ("node", "event")}
    message = details.pop("message", None)
    shown = (message or {}).get("text") or orjson.dumps(details).decode()
    return f"{entry['node']:>18}  {entry['event']:<14} {shown}"
