from __future__ import annotations

import dataclasses

import pytest
from temporalio.converter import DataConverter

from tests.whatsapp.payloads import load
from zapflow.whatsapp import cloud, evolution, jid
from zapflow.whatsapp.types import (
    ConnectionUpdate,
    InboundMessage,
    OutboundMedia,
    OutboundMessage,
    OutboundTemplate,
    StatusUpdate,
    WebhookEvent,
    dedupe_key,
    event_from_dict,
    event_to_dict,
)


def sample_events() -> list[WebhookEvent]:
    return [
        *cloud.parse_webhook(load("cloud_image")),
        *cloud.parse_webhook(load("cloud_statuses")),
        *evolution.parse_webhook(load("evolution_group")),
        *evolution.parse_webhook(load("evolution_connection_update")),
    ]


def test_dedupe_keys() -> None:
    image = cloud.parse_webhook(load("cloud_image"))[0]
    statuses = cloud.parse_webhook(load("cloud_statuses"))
    sent_id = statuses[0].key_id
    assert dedupe_key(image) == f"msg:{image.key_id}"
    assert [dedupe_key(s) for s in statuses[:3]] == [
        f"status:{sent_id}:sent",
        f"status:{sent_id}:delivered",
        f"status:{sent_id}:read",
    ]


def test_redelivery_has_the_same_dedupe_keys() -> None:
    first = [dedupe_key(e) for e in sample_events()]
    again = [dedupe_key(e) for e in sample_events()]
    assert first == again
    assert len(set(first)) == len(first)


def test_connection_updates_hash_their_content() -> None:
    [update] = evolution.parse_webhook(load("evolution_connection_update"))
    later = dataclasses.replace(update, timestamp=(update.timestamp or 0) + 5)
    closed = dataclasses.replace(update, state="close")
    keys = {dedupe_key(update), dedupe_key(later), dedupe_key(closed)}
    assert len(keys) == 3
    assert all(key.startswith("connection:") for key in keys)


def test_message_and_echo_of_the_same_id_share_a_key() -> None:
    upsert = evolution.parse_webhook(load("evolution_send_message"))[0]
    again = evolution.parse_webhook({**load("evolution_send_message"), "event": "messages.upsert"})
    assert dedupe_key(upsert) == dedupe_key(again[0])


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: f"{e.kind}-{e.provider}")
def test_events_round_trip_through_dicts(event: WebhookEvent) -> None:
    data = event_to_dict(event)
    assert data["kind"] == event.kind
    assert event_from_dict(data) == event


def test_unknown_event_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'other'"):
        event_from_dict({"kind": "other"})


@pytest.mark.parametrize(
    "value",
    [
        *sample_events(),
        OutboundMessage(
            type="media",
            to="+5511987654321",
            media=OutboundMedia(url="https://x/y.pdf", kind="document", filename="y.pdf"),
            reply_to_key_id="wamid.1",
            idempotency_key="send-1",
        ),
        OutboundMessage(
            type="template",
            to="5511987654321",
            template=OutboundTemplate(name="t", language="pt_BR", params=["a"]),
        ),
    ],
    ids=lambda v: type(v).__name__,
)
async def test_temporal_default_converter_round_trips(value: object) -> None:
    converter = DataConverter.default
    [payload] = await converter.encode([value])
    [decoded] = await converter.decode([payload], [type(value)])
    assert decoded == value


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"type": "text", "to": "+55", "text": ""}, "text message needs text"),
        ({"type": "media", "to": "+55"}, "media message needs media"),
        ({"type": "template", "to": "+55"}, "template message needs a template"),
        ({"type": "text", "to": "", "text": "x"}, "needs a recipient"),
    ],
)
def test_outbound_message_validates(fields: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        OutboundMessage(**fields)


def test_template_components() -> None:
    assert OutboundTemplate(name="t", language="en").resolved_components() == []
    explicit = [{"type": "header", "parameters": []}]
    template = OutboundTemplate(name="t", language="en", components=explicit, params=["x"])
    assert template.resolved_components() == explicit


def test_models_are_frozen() -> None:
    status = StatusUpdate(
        key_id="k", remote_jid="1@s.whatsapp.net", status="read", provider="cloud"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.status = "sent"  # type: ignore[misc]
    assert isinstance(ConnectionUpdate(state="open", provider="evolution"), ConnectionUpdate)
    assert InboundMessage.kind == "message"


@pytest.mark.parametrize(
    ("value", "normalized"),
    [
        ("5511987654321:12@s.whatsapp.net", "5511987654321@s.whatsapp.net"),
        ("5511987654321@c.us", "5511987654321@s.whatsapp.net"),
        ("5511987654321", "5511987654321@s.whatsapp.net"),
        ("207123456789012@lid", "207123456789012@lid"),
        ("120363025987654321@g.us", "120363025987654321@g.us"),
    ],
)
def test_normalize_jid(value: str, normalized: str) -> None:
    assert jid.normalize_jid(value) == normalized


def test_phone_helpers() -> None:
    assert jid.e164("+55 (11) 98765-4321") == "+5511987654321"
    assert jid.e164("") is None
    assert jid.phone_from_jid("5511987654321:3@s.whatsapp.net") == "+5511987654321"
    assert jid.phone_from_jid("207123456789012@lid") is None
    assert jid.phone_from_jid("120363025987654321@g.us") is None
    assert jid.jid_from_phone("+5511987654321") == "5511987654321@s.whatsapp.net"


def test_bsuid_helpers() -> None:
    assert jid.is_bsuid("BR.1502576394655843")
    assert jid.is_bsuid("US.ENT.11815799212886844830")
    assert jid.is_bsuid("BR.1502576394655843@bsuid")
    assert not jid.is_bsuid("5511987654321")
    assert not jid.is_bsuid("5511987654321@s.whatsapp.net")
    assert jid.jid_from_bsuid("BR.15") == "BR.15@bsuid"
