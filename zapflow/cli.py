"""The ``zapflow`` command line: dev, api, worker, migrate, temporal-setup, companies, ..."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from typing import Annotated, NoReturn

import httpx
import orjson
import typer
from rich.console import Console

from zapflow.bench.command import bench as bench_command
from zapflow.config import ConfigError, Settings, load_settings
from zapflow.flows.cli import flows_app

app = typer.Typer(
    help="zapflow: WhatsApp CRM automation on Temporal, Postgres and Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        fail(str(exc), code=2)


def exit_now(code: int) -> NoReturn:
    """Leave without interpreter finalization: temporalio/sdk-python#300 can abort it (code 134)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def dev(
    api_port: Annotated[int | None, typer.Option(help="API port [default: 8000]")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run the worker")] = False,
) -> None:
    """Run everything locally: embedded Temporal, Postgres, Redis, migrations, API and worker."""
    from zapflow.devserver import run_dev

    overrides = {"api_port": api_port} if api_port else {}
    raise typer.Exit(run_dev(settings_or_exit(**overrides), console, with_worker=not no_worker))


@app.command()
def api(
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="API processes sharing the port [default: ZAPFLOW_API_WORKERS, 1]"
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (uvicorn) against the configured services."""
    import uvicorn

    from zapflow.api.metrics import prepare_multiprocess_metrics
    from zapflow.logs import configure_logging

    settings = settings_or_exit()
    configure_logging(settings)
    workers = workers or settings.api_workers
    if workers > 1:
        prepare_multiprocess_metrics()
    uvicorn.run(
        "zapflow.api.app:create_served_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=workers,
        # a worker imports the whole app before it answers the supervisor's ping: on a busy
        # 2-core machine that took over uvicorn's default 5 s, and it was killed and restarted
        timeout_worker_healthcheck=60,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


@app.command()
def worker(
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="pipeline (conversations, sends, the inbox relay), ai (model calls), flows "
            "(tenants' URLs), all (those three), or embeddings (the embedder, which drains the "
            "embedding queue: a process of its own); repeat or comma-separate [default: all]",
        ),
    ] = None,
) -> None:
    """Run a worker process: Temporal workers for the given roles, or the embedder."""
    from zapflow.logs import configure_logging
    from zapflow.worker.registry import ROLES

    roles = {r.strip() for given in role or ["all"] for r in given.split(",") if r.strip()}
    unknown = sorted(roles - {*ROLES, "all", "embeddings"})
    if unknown:
        fail(f"unknown role {', '.join(unknown)}: choose from {', '.join(ROLES)}, all, embeddings")
    if "embeddings" in roles and len(roles) > 1:
        fail("--role embeddings runs the embedder, a process of its own: start it separately")
    settings = settings_or_exit()
    configure_logging(settings)
    if roles == {"embeddings"}:
        from zapflow.embeddings.local import ModelNotInstalled

        # the model is most of the stack's CPU per message (bench/results/2026-12-03-s5-
        # pipeline/NOTES.md): on cores it shares, it must not hold back the messages' path
        os.nice(settings.embedder_nice)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_embed_until_terminated(settings))
        except ModelNotInstalled as exc:
            fail(str(exc))
        return
    from zapflow.worker.main import run_worker

    chosen = ROLES if "all" in roles else tuple(r for r in ROLES if r in roles)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, chosen))
    exit_now(0)


async def _embed_until_terminated(settings: Settings) -> None:
    """The embedder; SIGTERM cancels it, so the batches in progress go back to the queue."""
    import signal

    from zapflow.worker.embedder import run_embedder

    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run_embedder(settings)


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply database migrations (alembic upgrade)."""
    from zapflow.migrate import upgrade

    settings = settings_or_exit()
    try:
        upgrade(settings.database_url, revision)
    except OSError as exc:
        fail(f"cannot reach the database at ZAPFLOW_DATABASE_URL: {exc}")
    console.print(f"database migrated to {revision}")


@app.command("temporal-setup")
def temporal_setup() -> None:
    """Register zapflow's search attributes on an external Temporal cluster."""
    from zapflow.temporal import register_search_attributes

    settings = settings_or_exit()
    try:
        added = asyncio.run(register_search_attributes(settings))
    except Exception as exc:
        console.print(f"[bold red]error:[/] cannot set up Temporal: {exc}")
        exit_now(1)
    console.print(f"search attributes registered: {', '.join(added) or 'all present already'}")
    exit_now(0)


companies = typer.Typer(help="Companies (tenants) and their API keys.", no_args_is_help=True)
app.add_typer(companies, name="companies")


@companies.command("create")
def create_company(
    name: Annotated[str, typer.Argument(help="The company's name")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
) -> None:
    """Create a company with its first admin API key, and print the key (shown only once)."""
    import json

    settings = settings_or_exit()
    try:
        company_id, key = asyncio.run(_create_company(settings, name))
    except OSError as exc:
        fail(f"cannot reach the database at ZAPFLOW_DATABASE_URL: {exc}")
    if json_output:
        print(json.dumps({"company_id": company_id, "name": name, "api_key": key}))
        return
    console.print(f"company [bold]{name}[/] created: {company_id}")
    console.print("admin API key (shown once, keep it safe):", highlight=False)
    print(key)


async def _create_company(settings: Settings, name: str) -> tuple[str, str]:
    from zapflow.db import create_engine, session_factory, transaction
    from zapflow.services.auth import create_company

    engine = create_engine(settings, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            company, key = await create_company(session, name)
    finally:
        await engine.dispose()
    return str(company.id), key.plain


@app.command("seed-demo")
def seed_demo(
    contacts: Annotated[int, typer.Option(min=0, help="Contacts to create")] = 1_000,
    messages: Annotated[
        int, typer.Option(min=0, help="Messages, spread over the conversations")
    ] = 10_000,
    company_name: Annotated[
        str | None, typer.Option(help="Name of the new company \\[default: Demo Company]")
    ] = None,
    company_id: Annotated[
        uuid.UUID | None, typer.Option(help="Fill this existing company instead of a new one")
    ] = None,
    conversations_per_contact: Annotated[
        int, typer.Option(help="1, or 2: one on the Cloud number and one on the Evolution number")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Same seed: same names, texts and shape")] = 42,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
) -> None:
    """Fill a company with realistic demo data: contacts, conversations, messages, deals.

    Creates a company (or fills --company-id) with a Cloud API and an Evolution instance, a few
    agents, the contacts (Brazilian and English names, +55 mobiles, some +1 and +44), their
    conversations, messages in Portuguese and English over the last 90 days, the funnels "Vendas"
    and "Suporte", and deals for about 10% of the contacts. Loads with COPY in one transaction
    (100k contacts and 1M messages take minutes), then runs VACUUM (ANALYZE). Prints the company
    id and a new admin API key (shown once).
    """
    import json
    from dataclasses import asdict

    from zapflow.errors import NotFound
    from zapflow.seed import SeedOptions, seed_with_progress

    if company_name is not None and company_id is not None:
        fail("give --company-name (a new company) or --company-id (fill one), not both", code=2)
    try:
        options = SeedOptions(
            contacts=contacts,
            messages=messages,
            company_name=company_name or "Demo Company",
            company_id=company_id,
            conversations_per_contact=conversations_per_contact,
            seed=seed,
        )
    except ValueError as exc:
        fail(str(exc), code=2)
    settings = settings_or_exit()
    try:
        result = asyncio.run(seed_with_progress(settings, options, console))
    except NotFound as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot reach the database at ZAPFLOW_DATABASE_URL: {exc}")
    if json_output:
        summary = {**asdict(result), "company_id": str(result.company_id)}
        print(json.dumps({**summary, "seconds": round(result.seconds, 1)}))
        return
    console.print(
        f"seeded {result.contacts:,} contacts, {result.conversations:,} conversations, "
        f"{result.messages:,} messages and {result.deals:,} deals in {result.seconds:.1f} s "
        f"({result.rows / result.seconds:,.0f} rows/s)"
    )
    console.print(f"company: {result.company_id}", highlight=False)
    console.print("admin API key (shown once, keep it safe):", highlight=False)
    print(result.api_key)


@app.command("simulate-inbound")
def simulate_inbound(
    instance_id: Annotated[uuid.UUID, typer.Argument(help="The instance's id")],
    text: Annotated[str, typer.Option(help="What the customer writes")] = "Oi! Qual o preço?",
    sender: Annotated[
        str, typer.Option("--from", help="The customer's number, in E.164")
    ] = "+5511999990000",
    name: Annotated[str, typer.Option(help="The customer's WhatsApp profile name")] = "Maria",
    api_url: Annotated[
        str | None, typer.Option(help="zapflow's API [default: ZAPFLOW_API_HOST:ZAPFLOW_API_PORT]")
    ] = None,
) -> None:
    """Post a signed inbound text to zapflow's webhook as the instance's provider would: try
    the whole pipeline (inbox, relay, conversations API, live events; the workflow when the
    message sets something off: a flow, the AI) without a phone."""
    settings = settings_or_exit()
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    try:
        status, body = asyncio.run(
            _simulate_inbound(settings, url, instance_id, sender, name, text)
        )
    except (OSError, httpx.HTTPError) as exc:
        fail(f"cannot reach zapflow: {exc}")
    console.print(f"webhook answered {status}: {body}", highlight=False)
    raise typer.Exit(0 if status == 200 else 1)


async def _simulate_inbound(
    settings: Settings, api_url: str, instance_id: uuid.UUID, sender: str, name: str, text: str
) -> tuple[int, str]:
    from zapflow.db import create_engine, session_factory
    from zapflow.models import WhatsAppInstance, WhatsAppProvider
    from zapflow.whatsapp import simulate

    engine = create_engine(settings, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            instance = await session.get(WhatsAppInstance, instance_id)
    finally:
        await engine.dispose()
    if instance is None:
        fail(f"no instance {instance_id} in ZAPFLOW_DATABASE_URL's database")
    digits = "".join(ch for ch in sender if ch.isdigit())
    key_id = f"simulated.{uuid.uuid4().hex}"
    headers = {"content-type": "application/json"}
    if instance.provider == WhatsAppProvider.CLOUD:
        change = simulate.cloud_text(digits, key_id, text, name=name)
        raw = orjson.dumps(simulate.cloud_delivery(instance.phone_number_id or "", change))
        headers["x-hub-signature-256"] = simulate.cloud_signature(raw, instance.app_secret or "")
    else:
        delivery = simulate.evolution_text(
            instance.evolution_instance or "", instance.api_key or "", digits, key_id, text, name
        )
        raw = orjson.dumps(delivery)
    webhook = f"{api_url.rstrip('/')}/webhooks/{instance.provider.value}/{instance.webhook_secret}"
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(webhook, content=raw, headers=headers)
    return response.status_code, response.text


embeddings = typer.Typer(help="Embeddings for semantic search.", no_args_is_help=True)
app.add_typer(embeddings, name="embeddings")
app.add_typer(flows_app, name="flows")


@embeddings.command("backfill")
def embeddings_backfill(
    company: Annotated[
        uuid.UUID | None, typer.Option(help="Only this company's messages [default: all]")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Show the progress until it is done")
    ] = True,
) -> None:
    """Queue every message that has no embedding under the configured model, for the embedder
    (`zapflow worker --role embeddings`, which `zapflow dev` runs): messages stored before the
    queue existed, all of them again after a model change, and those skipped before (their
    reason is cleared). Running it again queues only what is still missing."""
    settings = settings_or_exit()
    try:
        code = asyncio.run(_embeddings_backfill(settings, company, wait))
    except OSError as exc:
        fail(f"cannot reach the database at ZAPFLOW_DATABASE_URL: {exc}")
    raise typer.Exit(code)


async def _embeddings_backfill(settings: Settings, company: uuid.UUID | None, wait: bool) -> int:
    from rich.progress import Progress

    from zapflow.db import create_engine, session_factory, transaction
    from zapflow.embeddings import embedding_model
    from zapflow.services.embeddings import enqueue_missing, queue_outcome

    model = embedding_model(settings)
    engine = create_engine(settings, pool_size=1)
    sessions = session_factory(engine)
    try:
        async with transaction(sessions) as session:
            queued, at = await enqueue_missing(session, model, company)
        console.print(f"{queued} messages queued for {model}", highlight=False)
        if not wait:
            return 0
        with Progress(console=console) as progress:
            bar = progress.add_task("embedding messages", total=queued)
            while (outcome := await queue_outcome(sessions, model, company, at)).pending:
                progress.update(bar, completed=max(queued - outcome.pending, 0))
                await asyncio.sleep(0.5)
            progress.update(bar, completed=queued)
    finally:
        await engine.dispose()
    print(
        f"queued {queued}: {queued - outcome.missing} embedded, "
        f"{outcome.missing - outcome.skipped} too short, {outcome.skipped} skipped "
        "(their reasons: embedding_queue.skipped_reason)"
    )
    return 0


app.command("bench")(bench_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
