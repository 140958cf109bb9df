"""Hostile webhook bodies (tests/fuzz.py): both providers' normalizers return events or raise
``MalformedPayload``, nothing else; the webhooks answer every authenticated body with 200
(stored), 400 (kept as a rejected inbox row) or 413, never a 500; and whatever was stored makes
its way through the pipeline to a message row."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import (
    create_cloud_instance,
    create_evolution_instance,
    eventually,
    sign,
)
from tests.fuzz import (
    CLOUD_SAMPLES,
    DERANDOMIZE,
    EVOLUTION_SAMPLES,
    SCALE,
    bodies,
    deep,
    replaced,
)
from tests.whatsapp.payloads import load
from zapflow.api.webhooks import MAX_DEPTH, nested_deeper_than
from zapflow.db import SessionFactory, transaction
from zapflow.services.auth import create_company
from zapflow.services.inbox import dedupe_key, event_type
from zapflow.whatsapp import cloud, evolution
from zapflow.whatsapp.errors import MalformedPayload
from zapflow.whatsapp.types import MAX_EPOCH, WebhookEvent, event_from_dict, event_to_dict

UNIT = settings(
    max_examples=200 * SCALE,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
HTTP = settings(
    max_examples=50 * SCALE,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
EVENTS = st.sampled_from([None, "messages.upsert", "messages.update", "send.message"])


def _well_typed(name: str, value: Any, hint: Any) -> bool:
    """``value`` is of the field's declared type (what persisting it in a column assumes)."""
    options = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    for option in options:
        origin = get_origin(option) or option
        if option is type(None) and value is None:
            return True
        if origin is Literal and value in get_args(option):
            return True
        if origin is int and type(value) is int:
            return name != "timestamp" or 0 <= value <= MAX_EPOCH  # a datetime can hold it
        if origin in (str, bool, dict, list) and type(value) is origin:
            return True
    return False


def _storable(events: list[WebhookEvent]) -> None:
    """What the webhook and the pipeline do with the events must work for each of them: the
    inbox row round-trips, and every field has its declared type, the media's too."""
    for event in events:
        row = event_to_dict(event)
        assert event_from_dict(orjson.loads(orjson.dumps(row))) == event
        dedupe_key(event), event_type(event)
        for name, hint in get_type_hints(type(event)).items():
            if get_origin(hint) is not ClassVar:
                value = getattr(event, name)
                assert _well_typed(name, value, hint), f"{name}={value!r} is not {hint}"
        media = getattr(event, "media", None) or {}
        for name, value in media.items():
            wanted = bool if name == "voice" else str | None
            assert isinstance(value, wanted), f"media.{name}={value!r} is not {wanted}"


def _with(sample: str, *changes: tuple[tuple[Any, ...], Any]) -> Any:
    """A documented payload with values replaced: the fuzzer's finds, kept as regressions."""
    document = load(sample)
    for path, value in changes:
        document = replaced(document, path, value)
    return document


_CLOUD_STATUS = ("entry", 0, "changes", 0, "value", "statuses", 0)
_CLOUD_MESSAGE = ("entry", 0, "changes", 0, "value", "messages", 0)


@UNIT
@example(_with("cloud_statuses", ((*_CLOUD_STATUS, "status"), {"k": [1]})))  # unhashable
@example(
    _with(
        "cloud_statuses",
        ((*_CLOUD_STATUS, "recipient_id"), None),
        ((*_CLOUD_STATUS, "recipient_user_id"), {"k": 1}),  # no .strip()
    )
)
@example(_with("cloud_image", ((*_CLOUD_MESSAGE, "image", "caption"), {"k": 1})))
@given(bodies(CLOUD_SAMPLES))
def test_cloud_normalizer_returns_events_or_says_what_is_malformed(body: Any) -> None:
    assume(not nested_deeper_than(body, MAX_DEPTH))  # the webhook refuses those before
    try:
        events = cloud.parse_webhook(body)
    except MalformedPayload as exc:
        assert str(exc)
        return
    _storable(list(events))


@UNIT
@example(
    _with("evolution_revoke", (("data", "message", "protocolMessage", "key", "id"), {"k": 1})),
    None,
)
@example(_with("evolution_image", (("data", "message", "imageMessage", "caption"), [1])), None)
@given(bodies(EVOLUTION_SAMPLES), EVENTS)
def test_evolution_normalizer_returns_events_or_says_what_is_malformed(
    body: Any, event: str | None
) -> None:
    assume(not nested_deeper_than(body, MAX_DEPTH))
    try:
        events = evolution.parse_webhook(body, event=event)
    except MalformedPayload as exc:
        assert str(exc)
        return
    _storable(list(events))


@dataclass
class Target:
    company_id: str
    cloud: dict[str, Any]
    evolution: dict[str, Any]
    client: httpx.AsyncClient
    answers: dict[int, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
async def target(api_url: str, sessions: SessionFactory) -> AsyncIterator[Target]:
    async with transaction(sessions) as session:
        company, key = await create_company(session, "Fuzz Co")
    headers = {"Authorization": f"Bearer {key.plain}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
        tenant = Tenant(str(company.id), key.plain, client)
        cloud_instance = await create_cloud_instance(tenant)
        evolution_instance = await create_evolution_instance(tenant)
        yield Target(str(company.id), cloud_instance, evolution_instance, client)


def _fresh(value: Any, suffix: str, phone_number_id: str | None = None) -> Any:
    """Each example's message ids its own, so examples do not dedupe each other away; Cloud
    deliveries addressed to the target's number, so they go through the pipeline."""
    if isinstance(value, list):
        return [_fresh(v, suffix, phone_number_id) for v in value]
    if not isinstance(value, dict):
        return value
    fresh = {k: _fresh(v, suffix, phone_number_id) for k, v in value.items()}
    for name in ("id", "keyId"):
        if isinstance(fresh.get(name), str):
            fresh[name] += suffix
    if phone_number_id and isinstance(fresh.get("phone_number_id"), str):
        fresh["phone_number_id"] = phone_number_id
    return fresh


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()  # deeper than orjson writes


def _assert_clean(response: httpx.Response, target: Target) -> None:
    target.answers[response.status_code] = target.answers.get(response.status_code, 0) + 1
    assert response.status_code in (200, 400, 413), response.text[:500]
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["code"] and error["message"], response.text


def _cloud_text(text: str, timestamp: Any) -> dict[str, Any]:
    message = {"from": "5511999990000", "id": "wamid.X", "timestamp": timestamp, "type": "text"}
    value = {
        "metadata": {"phone_number_id": "1"},
        "messages": [{**message, "text": {"body": text}}],
    }
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", **value}}
    return {"object": "whatsapp_business_account", "entry": [{"changes": [change]}]}


def _evolution_text(text: str, timestamp: Any) -> dict[str, Any]:
    key = {"remoteJid": "5511999990000@s.whatsapp.net", "fromMe": False, "id": "3EB0X"}
    data = {"key": key, "message": {"conversation": text}, "messageTimestamp": timestamp}
    return {"event": "messages.upsert", "instance": "x", "data": data}


@pytest.mark.timeout(900)  # make test-faults runs 10 times as many examples
@HTTP
@example(body=_cloud_text("a\u0000b", "1"), junk=b"")
@example(body=_cloud_text("olá", "9" * 30), junk=b"")
@example(body=_cloud_text("x" * 1_000_000, 1), junk=b"")
@example(body=_cloud_text("deep", deep(500)), junk=b"")
@example(  # jsonb gives 1e30 back as a 31-digit integer, which no 64-bit JSON writer takes
    body=_with("cloud_referral", ((*_CLOUD_MESSAGE, "referral", "source_id"), 1e30)), junk=b""
)
@example(body=_with("cloud_image", ((*_CLOUD_MESSAGE, "image", "caption"), {"k": 1})), junk=b"")
@given(body=bodies(CLOUD_SAMPLES), junk=st.sampled_from([b"", b"\xff\xfe", b"\xc3\x28", b"{"]))
async def test_the_cloud_webhook_answers_every_signed_body_cleanly(
    target: Target, body: Any, junk: bytes
) -> None:
    fresh = _fresh(body, uuid.uuid4().hex[:8], target.cloud["phone_number_id"])
    raw = _dumps(fresh) + junk  # junk: invalid UTF-8, or a document cut short
    headers = {"content-type": "application/json", "x-hub-signature-256": sign(raw)}
    response = await target.client.post(target.cloud["webhook_url"], content=raw, headers=headers)
    _assert_clean(response, target)


@pytest.mark.timeout(900)  # make test-faults runs 10 times as many examples
@HTTP
@example(body=_evolution_text("a\u0000b", 1), junk=b"")
@example(body=_evolution_text("a", 1), junk=b"\x00")
@example(body=_evolution_text("olá", {"low": "x", "high": 1}), junk=b"")
@example(body=_evolution_text("olá", -(10**30)), junk=b"")
@given(body=bodies(EVOLUTION_SAMPLES), junk=st.sampled_from([b"", b"\xff\xfe", b"\xc3\x28", b"{"]))
async def test_the_evolution_webhook_answers_every_authenticated_body_cleanly(
    target: Target, body: Any, junk: bytes
) -> None:
    raw = _dumps(_fresh(body, uuid.uuid4().hex[:8])) + junk
    headers = {"content-type": "application/json", "apikey": "evo-key"}
    response = await target.client.post(
        target.evolution["webhook_url"], content=raw, headers=headers
    )
    _assert_clean(response, target)


async def test_what_the_fuzzed_webhooks_stored_reaches_the_messages(
    worker: None, target: Target, sessions: SessionFactory
) -> None:
    """Every stored inbound message event is relayed and persisted: none stays pending, none
    is relayed without its message row (a persist that fails forever would leave one)."""
    print("fuzzed webhook answers by status:", target.answers)
    assert target.answers.get(200, 0) > 0 and target.answers.get(400, 0) > 0
    query = text(
        "SELECT i.status, i.payload->>'key_id' AS key_id, i.payload->>'from_me' AS from_me,"
        " EXISTS (SELECT 1 FROM messages m WHERE m.instance_id = i.instance_id"
        "  AND m.message_key_id = i.payload->>'key_id') AS stored"
        " FROM inbox_events i WHERE i.company_id = :company AND i.event_type = 'message'"
    )

    async def unfinished() -> list[dict[str, Any]]:
        async with sessions() as session:
            rows = await session.execute(query, {"company": uuid.UUID(target.company_id)})
        return [
            dict(r._mapping)
            for r in rows
            if r.status == "pending" or (r.status == "processed" and not r.stored)
        ]

    await eventually(unfinished, lambda rows: not rows, within=90)
