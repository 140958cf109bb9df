"""Logs: one correlation id from the webhook to the send, and no secrets or message bodies."""

from __future__ import annotations

import logging
import time

import orjson
import pytest

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    APP_SECRET,
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    sign,
)
from zapflow.logs import CorrelationFilter, JsonFormatter

pytestmark = pytest.mark.usefixtures("worker")
CUSTOMER_TEXT = "meu-cpf-e-123.456.789-00"
AGENT_TEXT = "sua-senha-provisoria-XYZ987"


async def test_logs_follow_a_message_and_keep_secrets_out(
    tenant: Tenant,
    sessions,
    provider_server: ProviderServer,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(CorrelationFilter())
    instance = await create_cloud_instance(tenant)
    delivery = cloud_delivery(
        instance["phone_number_id"],
        cloud_text("5511955550000", "wamid.LOG1", CUSTOMER_TEXT, int(time.time())),
    )
    raw = orjson.dumps(delivery)
    ack = await tenant.client.post(
        instance["webhook_url"],
        content=raw,
        headers={"x-hub-signature-256": sign(raw), "x-request-id": "corr-inbound-1"},
    )
    assert ack.headers["x-request-id"] == "corr-inbound-1"

    def records(message: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == message]

    async def persisted() -> list[logging.LogRecord]:
        return records("inbound persisted")

    [line] = await eventually(persisted, lambda found: len(found) == 1)
    assert line.correlation_id == "corr-inbound-1"  # type: ignore[attr-defined]
    assert line.message_key_ids == ["wamid.LOG1"]  # type: ignore[attr-defined]
    assert line.workflow_id.startswith("conversation/")  # type: ignore[attr-defined]

    conversation_id = (await tenant.client.get("/api/v1/conversations")).json()["data"][0]["id"]
    reply = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": AGENT_TEXT},
        headers={"x-request-id": "corr-reply-1"},
    )
    assert reply.status_code == 202

    async def sent() -> list[logging.LogRecord]:
        return records("message sent")

    [line] = await eventually(sent, lambda found: len(found) == 1)
    assert line.correlation_id == "corr-reply-1"  # type: ignore[attr-defined]
    assert line.message_id == reply.json()["id"]  # type: ignore[attr-defined]

    formatter = JsonFormatter()
    everything = "\n".join(formatter.format(r) for r in caplog.records if r.levelno >= logging.INFO)
    for secret in (tenant.api_key, APP_SECRET, "cloud-token", CUSTOMER_TEXT, AGENT_TEXT):
        assert secret not in everything, f"{secret!r} appears in the logs"
