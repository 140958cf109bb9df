"""Logs: one correlation id from the webhook to the send, and no secrets, webhook tokens or
message bodies, also when a request is refused or fails."""

from __future__ import annotations

import logging
import time
import uuid

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import (
    APP_SECRET,
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    post_cloud,
    sign,
)
from tests.fuzz import replaced
from tests.whatsapp.payloads import load
from zapflow.config import Settings
from zapflow.db import create_engine
from zapflow.logs import ConsoleFormatter, CorrelationFilter, JsonFormatter

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

    async def persisted() -> list[logging.LogRecord]:  # other tests' messages log here too
        lines = records("inbound persisted")
        return [r for r in lines if "wamid.LOG1" in getattr(r, "message_key_ids", ())]

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
        lines = records("message sent")
        return [r for r in lines if getattr(r, "message_id", None) == reply.json()["id"]]

    [line] = await eventually(sent, lambda found: len(found) == 1)
    assert line.correlation_id == "corr-reply-1"  # type: ignore[attr-defined]
    assert line.message_id == reply.json()["id"]  # type: ignore[attr-defined]

    formatter = JsonFormatter()
    everything = "\n".join(formatter.format(r) for r in caplog.records if r.levelno >= logging.INFO)
    for secret in (tenant.api_key, APP_SECRET, "cloud-token", CUSTOMER_TEXT, AGENT_TEXT):
        assert secret not in everything, f"{secret!r} appears in the logs"


async def test_refused_and_failed_requests_log_no_text_secret_or_webhook_token(
    tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A NUL in a body once failed the query, and the statement's values (message text, an
    instance's credentials) were logged with it; an error on a webhook logged its path, whose
    last segment is the webhook's token; uvicorn's access log writes every path and query."""
    caplog.set_level(logging.DEBUG)
    instance = await create_cloud_instance(tenant)
    token = instance["webhook_url"].rsplit("/", 1)[-1]
    access_token, app_secret = f"access-{uuid.uuid4().hex}", f"secret-{uuid.uuid4().hex}"
    await tenant.client.post(
        "/api/v1/contacts", json={"phone_number": "+5511955551111", "name": CUSTOMER_TEXT + "\x00"}
    )
    await tenant.client.post(
        "/api/v1/instances",
        json={
            "name": "Sales\x00",
            "provider": "cloud",
            "phone_number_id": uuid.uuid4().hex[:15],
            "access_token": access_token,
            "app_secret": app_secret,
        },
    )
    status = ("entry", 0, "changes", 0, "value", "statuses", 0, "status")
    metadata = ("entry", 0, "changes", 0, "value", "metadata", "phone_number_id")
    delivery = replaced(load("cloud_statuses"), status, {"not": "a status"})
    delivery = replaced(delivery, metadata, instance["phone_number_id"])
    await post_cloud(tenant.client, instance["webhook_url"], delivery)  # the normalizer failed
    handshake = f"/webhooks/cloud/{token}?hub.verify_token={instance['verify_token']}"
    access_line = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:50000", "GET", handshake, "1.1", 200), None,
    )  # fmt: skip
    records = [*caplog.records, access_line]
    formatted = [f.format(r) for f in (JsonFormatter(), ConsoleFormatter()) for r in records]
    everything = "\n".join(formatted)
    secrets = (token, instance["verify_token"], access_token, app_secret, CUSTOMER_TEXT)
    assert not [s for s in secrets if s in everything], "a secret or text was logged"


async def test_a_failed_statement_shows_its_sql_but_not_its_values(settings: Settings) -> None:
    """What a failed query raises is logged (and kept in Temporal failures): SQLAlchemy leaves
    the statement's values out of it. (Postgres's own message may still quote the value it
    refused, as in "invalid input syntax for type integer": see SECURITY.md.)"""
    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as failed:
                statement = text("SELECT 1 / 0 WHERE CAST(:value AS text) IS NOT NULL")
                await connection.execute(statement, {"value": AGENT_TEXT})
    finally:
        await engine.dispose()
    assert "division by zero" in str(failed.value) and AGENT_TEXT not in str(failed.value)
