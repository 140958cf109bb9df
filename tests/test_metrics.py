"""Metrics after an end-to-end run: the API's /metrics and the worker's Prometheus exporter."""

from __future__ import annotations

import re
import time

import httpx

from tests.fixtures.app import SCRAPER, Tenant, in_process_api, start_worker
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    ok_json,
    post_cloud,
)
from zapflow.config import Settings
from zapflow.db import create_engine, session_factory, transaction
from zapflow.devstack import free_port
from zapflow.services.auth import create_company


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition, or None."""
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    return None


async def test_api_and_worker_metrics_after_a_conversation(
    isolated: Settings, provider_server: ProviderServer
) -> None:
    metrics_port = free_port()
    worker = start_worker(isolated, ZAPFLOW_WORKER_METRICS_PORT=str(metrics_port))
    engine = create_engine(isolated, pool_size=2)
    async with transaction(session_factory(engine)) as session:
        company, key = await create_company(session, "Metrics Co")
    try:
        async with in_process_api(isolated, key.plain) as (_, client):
            tenant = Tenant(str(company.id), key.plain, client)
            instance = await create_cloud_instance(tenant)
            delivery = cloud_delivery(
                instance["phone_number_id"],
                cloud_text("5511966660000", "wamid.MET1", "oi", int(time.time())),
            )
            assert (await post_cloud(client, instance["webhook_url"], delivery)).status_code == 200

            async def conversations() -> list[dict[str, object]]:
                return ok_json(await client.get("/api/v1/conversations")).get("data", [])

            [conversation] = await eventually(conversations, lambda rows: len(rows) == 1, 30)
            reply = await client.post(
                f"/api/v1/conversations/{conversation['id']}/messages", json={"text": "olá"}
            )
            await provider_server.wait_for_requests(1, within=20)
            assert reply.status_code == 202
            api_metrics = (await client.get("/metrics", headers=SCRAPER)).text

        async def worker_metrics() -> str:
            try:
                async with httpx.AsyncClient() as scraper:
                    return (await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            except httpx.HTTPError:
                return ""

        text = await eventually(
            worker_metrics,
            lambda t: (
                (sample(t, "zapflow_activity_outcomes", activity_type="send_message") or 0) >= 1
            ),
            within=30,
        )
    finally:
        worker.kill()
        worker.wait(10)
        await engine.dispose()

    webhook = sample(
        api_metrics, "starlette_requests_total", path_template="/webhooks/cloud/{token}"
    )
    assert webhook is not None and webhook >= 1
    assert (sample(api_metrics, "zapflow_webhook_ack_seconds_count", provider="cloud") or 0) >= 1
    assert sample(api_metrics, "zapflow_inbox_pending") is not None
    assert sample(api_metrics, "zapflow_event_loop_lag_seconds") is not None
    assert (sample(api_metrics, "process_resident_memory_bytes") or 0) > 10_000_000

    assert sample(text, "zapflow_relay_events", kind="message") == 1
    assert sample(text, "zapflow_relay_events", kind="outbound") == 1
    assert sample(text, "zapflow_relay_stores", outcome="stored") == 1
    # the customer's message set off nothing (no flow, AI or follow-up): no signal for it
    assert sample(text, "zapflow_relay_quiet_conversations") == 1
    completed = sample(
        text, "zapflow_activity_outcomes", activity_type="send_message", outcome="completed"
    )
    assert completed == 1
    latency_count = sample(text, "zapflow_message_event_latency_count")
    latency_sum = sample(text, "zapflow_message_event_latency_sum")
    assert latency_count == 1 and latency_sum is not None and 0 < latency_sum < 30
    assert "temporal_workflow_task_execution_latency" in text  # the SDK's own


async def test_the_api_metrics_are_not_public(settings: Settings, tenant: Tenant) -> None:
    """Only the operator's scraper (ZAPFLOW_METRICS_TOKEN) reads /metrics; a tenant's API key,
    a wrong token or none get a 401; with no token configured there is no /metrics at all."""
    anonymous = httpx.AsyncClient(base_url=str(tenant.client.base_url))
    async with anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer not-the-metrics-token"}
        assert (await anonymous.get("/metrics", headers=wrong)).status_code == 401
        answer = await anonymous.get("/metrics", headers=SCRAPER)
        assert answer.status_code == 200 and "starlette_requests_total" in answer.text
    assert (await tenant.client.get("/metrics")).status_code == 401
    without = settings.model_copy(update={"metrics_token": None})
    async with in_process_api(without) as (_, client):
        assert (await client.get("/metrics", headers=SCRAPER)).status_code == 404
