"""The foundation: health and readiness, configuration errors, the CLI, the dev stack's guards."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.fixtures.app import in_process_api
from zapflow.api.app import create_app
from zapflow.config import Settings
from zapflow.devstack import EmbeddedStack, StackConfig, StackError, free_port


async def test_health_and_readiness(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["components"] == {"postgres": "ok", "redis": "ok", "temporal": "ok"}


async def test_readiness_names_the_failing_component(settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with in_process_api(broken) as (_, client):
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["redis"]
    assert ready.json()["components"]["postgres"] == "ok"


def test_no_dependency_runs_in_a_thread(settings: Settings) -> None:
    """FastAPI runs a plain ``def`` dependency in its thread pool: a thread hop on every request
    for what is a few attribute reads. Every dependency of every route is ``async def``."""

    def sync_calls(dependant: Any) -> list[str]:
        found = []
        for sub in dependant.dependencies:
            call = sub.call
            if call is not None and not (
                inspect.iscoroutinefunction(call)
                or inspect.isasyncgenfunction(call)
                or inspect.iscoroutinefunction(type(call).__call__)  # HTTPBearer()
            ):
                found.append(getattr(call, "__qualname__", repr(call)))
            found += sync_calls(sub)
        return found

    app = create_app(settings)
    contexts = [
        context
        for route in app.routes
        if hasattr(route, "effective_route_contexts")
        for context in route.effective_route_contexts()
    ]
    assert len(contexts) > 50
    assert {name for c in contexts for name in sync_calls(c.dependant)} == set()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zapflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_bad_configuration_is_one_clear_line() -> None:
    result = run_cli("migrate", env={"ZAPFLOW_API_PORT": "eighty", "ZAPFLOW_REDIS_URL": "http://x"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "ZAPFLOW_API_PORT" in lines[0] and "ZAPFLOW_REDIS_URL" in lines[0]


async def test_companies_create_prints_a_working_key(settings: Settings, api_url: str) -> None:
    result = await asyncio.to_thread(
        run_cli, "companies", "create", "Acme", "--json",
        env={"ZAPFLOW_DATABASE_URL": settings.database_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    async with httpx.AsyncClient(base_url=api_url) as client:
        allowed = await client.get("/api/v1/instances", headers=headers)
        refused = await client.get("/api/v1/instances", headers={"Authorization": "Bearer zf_nope"})
    assert (allowed.status_code, allowed.json()) == (200, [])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


def test_dev_stack_refuses_a_taken_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = EmbeddedStack(StackConfig(tmp_path, port, free_port(), free_port(), None))
        with pytest.raises(
            StackError, match=f"port {port} for Postgres.*ZAPFLOW_DEV_POSTGRES_PORT"
        ):
            stack.check_ports()


def test_openapi_documents_the_routes(settings: Settings) -> None:
    spec = create_app(settings).openapi()
    paths = spec["paths"]
    for path in ("/webhooks/cloud/{token}", "/api/v1/instances", "/api/v1/stream",
                 "/api/v1/conversations/{conversation_id}/messages"):  # fmt: skip
        assert path in paths
    for operations in paths.values():
        for operation in operations.values():
            assert operation.get("summary"), operation


async def test_large_json_is_compressed_and_null_names_are_refused(tenant) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.traffic import create_cloud_instance

    for _ in range(6):
        await create_cloud_instance(tenant)
    listed = await tenant.client.get("/api/v1/instances", headers={"Accept-Encoding": "gzip"})
    assert listed.headers["content-encoding"] == "gzip"
    instance_id = listed.json()[0]["id"]
    renamed = await tenant.client.patch(f"/api/v1/instances/{instance_id}", json={"name": None})
    assert renamed.status_code == 422
    assert renamed.json()["error"]["message"].startswith("body.name")


@pytest.mark.usefixtures("worker")
async def test_simulate_inbound_goes_through_the_whole_pipeline(
    settings: Settings, api_url: str, tenant
) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.traffic import (
        create_cloud_instance,
        create_evolution_instance,
        eventually,
        ok_json,
    )

    for instance in (await create_cloud_instance(tenant), await create_evolution_instance(tenant)):
        result = await asyncio.to_thread(
            run_cli, "simulate-inbound", instance["id"], "--text", "Olá!", "--api-url", api_url,
            env={"ZAPFLOW_DATABASE_URL": settings.database_url},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "webhook answered 200" in result.stderr

    async def inbox() -> list[dict]:  # type: ignore[type-arg]
        return ok_json(await tenant.client.get("/api/v1/conversations"))["data"]

    rows = await eventually(inbox, lambda found: len(found) == 2)
    assert {row["last_message_preview"] for row in rows} == {"Olá!"}
