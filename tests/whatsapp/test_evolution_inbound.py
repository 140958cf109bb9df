from __future__ import annotations

from typing import Any

import pytest

from tests.whatsapp.payloads import load
from zapflow.whatsapp import evolution
from zapflow.whatsapp.errors import MalformedPayload
from zapflow.whatsapp.types import ConnectionUpdate, InboundMessage, StatusUpdate, media_dict

MARIA = {
    "remote_jid": "5511987654321@s.whatsapp.net",
    "phone": "+5511987654321",
    "push_name": "Maria Souza",
    "from_me": False,
    "participant": None,
    "provider": "evolution",
    "instance": "loja-centro",
    "timestamp": 1767225600,
}
IMAGE_URL = "https://mmg.whatsapp.net/o1/v/t62.7118-24/f1/m232/up-oil-image.enc?ccb=9-4"
JOAO = {
    "name": "João Pereira",
    "phones": [{"phone": "+5521998765432", "wa_id": "5521998765432"}],
    "emails": ["joao@example.com"],
    "card": None,
}

CASES: dict[str, dict[str, Any]] = {
    "evolution_conversation": {
        "key_id": "3EB0A1B2C3D4E5F60718",
        "type": "text",
        "body": "Olá, quero saber o preço do plano anual",
        "payload": {},
        "reply_to_key_id": None,
    },
    "evolution_extended_text_reply": {
        "type": "text",
        "body": "Pode ser amanhã?",
        "reply_to_key_id": "BAE5F1E2D3C4B5A6",
        "payload": {
            "quoted": {
                "key_id": "BAE5F1E2D3C4B5A6",
                "participant": "5511900001111@s.whatsapp.net",
                "text": "Podemos agendar para hoje?",
            }
        },
    },
    "evolution_image": {
        "type": "image",
        "body": "Foto do produto",
        "media": media_dict(
            id="3EB0A1B2C3D4E5F60720",
            url="https://s3.example.com/evolution/loja-centro/3EB0A1B2C3D4E5F60720.jpeg",
            mime_type="image/jpeg",
            caption="Foto do produto",
            sha256="0jPmMCgFMrB/5VY5nzv0oYHmLMZKVObsycD0f3Kd5bw=",
        ),
    },
    "evolution_video": {
        "type": "video",
        "body": "Vídeo do defeito",
        "media": media_dict(
            id="3EB0A1B2C3D4E5F60721",
            url="https://mmg.whatsapp.net/v/t62.7161-24/video.enc",
            mime_type="video/mp4",
            caption="Vídeo do defeito",
            sha256="x4cMPlk1DXxtCtbGyVvWh4ngrFDDuqa6i+Z4Ct7V+V0=",
        ),
    },
    "evolution_audio_ptt": {
        "type": "audio",
        "body": None,
        "media": media_dict(
            id="3EB0A1B2C3D4E5F60722",
            url="https://mmg.whatsapp.net/v/t62.7117-24/audio.enc",
            mime_type="audio/ogg; codecs=opus",
            voice=True,
            sha256="h5EubUHhMyq3ocPmDjHJDOhvQ0I4YuxdHJ3NpRsF+Os=",
        ),
    },
    "evolution_document": {
        "type": "document",
        "body": None,
        "media": media_dict(
            id="3EB0A1B2C3D4E5F60723",
            url="https://mmg.whatsapp.net/v/t62.7119-24/doc.enc",
            mime_type="application/pdf",
            filename="contrato-2026.pdf",
            sha256="Tz7lyt5E1EeT3QOqtXBMJFRmEoyD6m0mmPS3rGw2QrQ=",
        ),
    },
    "evolution_document_with_caption": {
        "type": "document",
        "body": "Segue o orçamento",
        "media": media_dict(
            id="3EB0A1B2C3D4E5F60724",
            url="https://mmg.whatsapp.net/v/t62.7119-24/doc2.enc",
            mime_type="application/pdf",
            caption="Segue o orçamento",
            filename="orcamento.pdf",
            sha256="AQIDBA==",
        ),
    },
    "evolution_sticker": {
        "type": "sticker",
        "payload": {"animated": True},
        "media": media_dict(
            id="3EB0A1B2C3D4E5F60725",
            url="https://mmg.whatsapp.net/v/t62.15575-24/sticker.enc",
            mime_type="image/webp",
            sha256="mC6JdN1Mp1D3BVRS7pVv1p9pvkIRZqQ+v7dmEwNjDhE=",
        ),
    },
    "evolution_location": {
        "type": "location",
        "payload": {
            "latitude": -23.561414,
            "longitude": -46.655881,
            "name": "MASP",
            "address": "Av. Paulista, 1578 - Bela Vista, São Paulo - SP",
            "url": "https://masp.org.br",
        },
    },
    "evolution_buttons_response": {
        "type": "interactive",
        "body": "Plano anual",
        "reply_to_key_id": "BAE5B0B1B2B3B4B5",
    },
    "evolution_list_response": {
        "type": "interactive",
        "body": "09:00",
        "payload": {
            "interactive_type": "list_reply",
            "id": "slot_0900",
            "title": "09:00",
            "description": "Segunda-feira, manhã",
        },
    },
    "evolution_template_button_reply": {
        "type": "button",
        "body": "Confirmar",
        "payload": {"payload": "CONFIRM_APPOINTMENT", "text": "Confirmar"},
    },
    "evolution_reaction": {
        "type": "reaction",
        "body": None,
        "payload": {"emoji": "\u2764\ufe0f", "target_key_id": "BAE5F1E2D3C4B5A6"},
    },
    "evolution_ephemeral": {
        "type": "text",
        "body": "mensagem temporária",
        "payload": {"forwarded": True, "frequently_forwarded": True},
    },
    "evolution_view_once": {
        "type": "image",
        "body": "só uma vez",
        "media": media_dict(
            id="3EB0A1B2C3D4E5F6072E",
            url=IMAGE_URL,
            mime_type="image/jpeg",
            caption="só uma vez",
            sha256="0jPmMCgFMrB/5VY5nzv0oYHmLMZKVObsycD0f3Kd5bw=",
        ),
    },
    "evolution_ad_referral": {
        "type": "text",
        "body": "Vi o anúncio, quero saber mais",
        "payload": {
            "referral": {
                "source_url": "https://fb.me/3cr4Wqqkv",
                "source_id": "120212345678900123",
                "source_type": "ad",
                "headline": "Plano anual com 30% off",
                "body": "Fale com a gente no WhatsApp",
                "media_type": "image",
                "image_url": "https://scontent.xx.fbcdn.net/v/t45.1600-4/ad.png",
                "video_url": None,
                "thumbnail_url": "https://scontent.xx.fbcdn.net/v/t45.1600-4/thumb.png",
                "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
            }
        },
    },
    "evolution_messages_upsert_upper": {"type": "text", "body": "evento em maiúsculas"},
}


def only(name: str) -> Any:
    events = evolution.parse_webhook(load(name))
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_message_types_normalize(name: str) -> None:
    message = only(name)
    assert isinstance(message, InboundMessage)
    for field, expected in {**MARIA, **CASES[name]}.items():
        assert getattr(message, field) == expected, field


def test_buttons_response_is_an_interactive_button_reply() -> None:
    message = only("evolution_buttons_response")
    assert message.payload["interactive_type"] == "button_reply"
    assert message.payload["id"] == "plan_annual"
    assert message.payload["title"] == "Plano anual"


def test_contact_card_reads_the_vcard() -> None:
    message = only("evolution_contact")
    assert message.type == "contacts"
    [card] = message.payload["contacts"]
    assert {k: card[k] for k in JOAO} == JOAO
    assert card["vcard"].startswith("BEGIN:VCARD")


def test_contacts_array_keeps_every_card() -> None:
    message = only("evolution_contacts_array")
    names = [card["name"] for card in message.payload["contacts"]]
    assert names == ["João Pereira", "Ana Lima"]
    assert message.payload["contacts"][1]["phones"] == [
        {"phone": "+5531991112222", "wa_id": "5531991112222"}
    ]


def test_unknown_message_kept_as_unsupported_with_raw() -> None:
    message = only("evolution_unsupported")
    assert message.type == "unsupported"
    assert message.payload["original_type"] == "pollCreationMessageV3"
    assert message.payload["raw"] == load("evolution_unsupported")["data"]["message"]


def test_group_message_sender_is_the_participant_with_both_aliases() -> None:
    message = only("evolution_group")
    assert message.remote_jid == "120363025987654321@g.us"
    assert message.participant == "5531991112222@s.whatsapp.net"
    assert message.phone == "+5531991112222"
    assert message.lid == "140978654321098@lid"
    assert message.push_name == "Carlos Lima"
    assert message.body == "Bom dia, grupo!"


@pytest.mark.parametrize("name", ["evolution_lid", "evolution_lid_alt"])
def test_lid_chat_exposes_lid_and_phone_and_is_keyed_by_phone(name: str) -> None:
    message = only(name)
    assert message.lid == "207123456789012@lid"
    assert message.phone == "+5511987654321"
    assert message.remote_jid == "5511987654321@s.whatsapp.net"


def test_lid_chat_without_phone_alias_stays_on_lid() -> None:
    body = load("evolution_lid")
    del body["data"]["key"]["senderPn"]
    message = evolution.parse_webhook(body)[0]
    assert message.remote_jid == "207123456789012@lid"
    assert message.lid == "207123456789012@lid"
    assert message.phone is None


def test_device_suffix_is_dropped_from_jids() -> None:
    body = load("evolution_conversation")
    body["data"]["key"]["remoteJid"] = "5511987654321:17@s.whatsapp.net"
    assert evolution.parse_webhook(body)[0].remote_jid == "5511987654321@s.whatsapp.net"


def test_send_message_is_our_own_message_without_push_name() -> None:
    message = only("evolution_send_message")
    assert message.from_me is True
    assert message.push_name is None
    assert message.phone == "+5511987654321"
    assert message.key_id == "BAE5C0C1C2C3C4C5"


@pytest.mark.parametrize("name", ["evolution_revoke", "evolution_messages_delete"])
def test_deletes_become_deleted_statuses_of_the_target(name: str) -> None:
    status = only(name)
    assert isinstance(status, StatusUpdate)
    assert status.status == "deleted"
    assert status.key_id == "3EB0A1B2C3D4E5F60718"
    assert status.remote_jid == "5511987654321@s.whatsapp.net"
    assert status.from_me is False


def test_messages_update_normalizes_status() -> None:
    status = only("evolution_messages_update")
    assert isinstance(status, StatusUpdate)
    assert (status.key_id, status.status, status.from_me) == ("BAE5C0C1C2C3C4C5", "read", True)
    assert status.timestamp == 1767225600


def test_messages_update_list_maps_every_ack_and_skips_pending() -> None:
    events = evolution.parse_webhook(load("evolution_messages_update_list"))
    assert [(e.key_id[-2:], e.status) for e in events] == [
        ("C5", "delivered"),
        ("C6", "sent"),
        ("C7", "read"),
        ("C8", "failed"),
    ]
    assert events[3].error is not None


def test_connection_update() -> None:
    update = only("evolution_connection_update")
    assert update == ConnectionUpdate(
        state="open",
        provider="evolution",
        instance="loja-centro",
        status_reason=200,
        wuid="5511900001111@s.whatsapp.net",
        timestamp=1767225600,
    )


def test_unhandled_events_are_skipped() -> None:
    assert evolution.parse_webhook(load("evolution_contacts_update")) == []


def test_data_may_be_a_list_of_messages() -> None:
    body = load("evolution_conversation")
    second = load("evolution_extended_text_reply")["data"]
    body["data"] = [body["data"], second]
    events = evolution.parse_webhook(body)
    assert [e.key_id for e in events] == ["3EB0A1B2C3D4E5F60718", "3EB0A1B2C3D4E5F60719"]


def test_url_suffix_event_overrides_the_body() -> None:
    body = load("evolution_conversation")
    del body["event"]
    event = evolution.event_from_url_suffix("/webhooks/evolution/messages-upsert")
    assert event == "messages.upsert"
    assert evolution.parse_webhook(body, event=event)[0].body.startswith("Olá")


@pytest.mark.parametrize(
    ("raw", "event"),
    [
        ("messages.upsert", "messages.upsert"),
        ("MESSAGES_UPSERT", "messages.upsert"),
        ("messages-upsert", "messages.upsert"),
        ("SEND_MESSAGE", "send.message"),
        ("connection-update", "connection.update"),
    ],
)
def test_event_names_normalize(raw: str, event: str) -> None:
    assert evolution.normalize_event(raw) == event


def test_message_timestamp_as_protobuf_long() -> None:
    body = load("evolution_conversation")
    body["data"]["messageTimestamp"] = {"low": 1767225600, "high": 0, "unsigned": True}
    assert evolution.parse_webhook(body)[0].timestamp == 1767225600


def _evo(**changes: Any) -> dict[str, Any]:
    body = load("evolution_conversation")
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(leaf)
        else:
            target[leaf] = value
    return body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("x", "body must be a JSON object, got str"),
        (_evo(event=None), "missing 'event'"),
        (_evo(data=None), "'data' must be an object or a list, got NoneType"),
        (_evo(data="x"), "'data' must be an object or a list, got str"),
        (_evo(data=[1]), "data[0] must be an object"),
        (_evo(data__key=None), "data[0]: missing 'key'"),
        (_evo(data__key__id=None), "data[0].key: missing 'id'"),
        (_evo(data__key__remoteJid=""), "data[0].key: missing 'remoteJid'"),
        (
            {
                "event": "messages.update",
                "data": {"status": "READ", "remoteJid": "1@s.whatsapp.net"},
            },
            "data[0]: missing 'keyId'",
        ),
        ({"event": "connection.update", "data": {"instance": "x"}}, "data[0]: missing 'state'"),
    ],
)
def test_malformed_payloads_name_what_is_wrong(body: Any, fragment: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        evolution.parse_webhook(body)
    assert fragment in str(caught.value)


def test_status_broadcast_stories_are_not_chat_messages() -> None:
    body = load("evolution_image")
    body["data"]["key"]["remoteJid"] = "status@broadcast"
    body["data"]["key"]["participant"] = "5511987654321@s.whatsapp.net"
    assert evolution.parse_webhook(body) == []
