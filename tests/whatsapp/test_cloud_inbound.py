from __future__ import annotations

from typing import Any

import pytest

from tests.whatsapp.payloads import load
from zapflow.whatsapp import cloud
from zapflow.whatsapp.errors import MalformedPayload
from zapflow.whatsapp.types import (
    InboundMessage,
    PreferenceUpdate,
    StatusUpdate,
    TemplateUpdate,
    event_from_dict,
    event_to_dict,
    media_dict,
)

MARIA = {
    "remote_jid": "5511987654321@s.whatsapp.net",
    "phone": "+5511987654321",
    "push_name": "Maria Souza",
    "from_me": False,
    "provider": "cloud",
    "instance": "106540352242922",
    "timestamp": 1767225600,
}
REPLIED_TO = "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEkI1QkJFOTg4QjE4NDNBQzk0NQA="
TEMPLATE_MSG = "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjRDQTgyQUJGQzBEMjQ2RTRFOQA="

CASES: dict[str, dict[str, Any]] = {
    "cloud_text": {"type": "text", "body": "Olá, quero saber o preço do plano anual"},
    "cloud_image": {
        "type": "image",
        "body": "Foto do produto",
        "media": media_dict(
            id="1479537139650973",
            url="https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1479537139650973&ext=1767225600&hash=ATu",
            mime_type="image/jpeg",
            caption="Foto do produto",
            sha256="0jPmMCgFMrB/5VY5nzv0oYHmLMZKVObsycD0f3Kd5bw=",
        ),
    },
    "cloud_audio_voice": {
        "type": "audio",
        "body": None,
        "media": media_dict(
            id="1003383421387256",
            mime_type="audio/ogg; codecs=opus",
            voice=True,
            sha256="h5EubUHhMyq3ocPmDjHJDOhvQ0I4YuxdHJ3NpRsF+Os=",
        ),
    },
    "cloud_video": {
        "type": "video",
        "body": "Vídeo do defeito",
        "media": media_dict(
            id="1318661861816704",
            mime_type="video/mp4",
            caption="Vídeo do defeito",
            sha256="x4cMPlk1DXxtCtbGyVvWh4ngrFDDuqa6i+Z4Ct7V+V0=",
        ),
    },
    "cloud_document": {
        "type": "document",
        "body": "Segue o contrato",
        "media": media_dict(
            id="1216155009664468",
            mime_type="application/pdf",
            caption="Segue o contrato",
            filename="contrato-2026.pdf",
            sha256="Tz7lyt5E1EeT3QOqtXBMJFRmEoyD6m0mmPS3rGw2QrQ=",
        ),
    },
    "cloud_sticker": {
        "type": "sticker",
        "media": media_dict(
            id="2134429210336519",
            mime_type="image/webp",
            sha256="mC6JdN1Mp1D3BVRS7pVv1p9pvkIRZqQ+v7dmEwNjDhE=",
        ),
        "payload": {},
    },
    "cloud_location": {
        "type": "location",
        "body": None,
        "payload": {
            "latitude": -23.561414,
            "longitude": -46.655881,
            "name": "MASP",
            "address": "Av. Paulista, 1578 - Bela Vista, São Paulo - SP",
            "url": "https://masp.org.br",
        },
    },
    "cloud_interactive_button_reply": {
        "type": "interactive",
        "body": "Plano anual",
        "reply_to_key_id": REPLIED_TO,
        "payload": {
            "interactive_type": "button_reply",
            "id": "plan_annual",
            "title": "Plano anual",
            "description": None,
        },
    },
    "cloud_interactive_list_reply": {
        "type": "interactive",
        "body": "09:00",
        "payload": {
            "interactive_type": "list_reply",
            "id": "slot_0900",
            "title": "09:00",
            "description": "Segunda-feira, manhã",
        },
    },
    "cloud_interactive_nfm_reply": {
        "type": "interactive",
        "body": "Sent",
        "payload": {
            "interactive_type": "nfm_reply",
            "name": "flow",
            "response": {"flow_token": "tok-1", "plan": "annual"},
        },
    },
    "cloud_button": {
        "type": "button",
        "body": "Confirmar",
        "reply_to_key_id": TEMPLATE_MSG,
        "payload": {"payload": "CONFIRM_APPOINTMENT", "text": "Confirmar"},
    },
    "cloud_reaction": {
        "type": "reaction",
        "body": None,
        "payload": {"emoji": "\U0001f44d", "target_key_id": TEMPLATE_MSG},
    },
    "cloud_reply_forwarded": {
        "type": "text",
        "body": "Pode ser amanhã?",
        "reply_to_key_id": REPLIED_TO,
        "payload": {"forwarded": True, "frequently_forwarded": True},
    },
    "cloud_referral": {
        "type": "text",
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
                "thumbnail_url": None,
                "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
            }
        },
    },
}


def only(name: str) -> InboundMessage:
    events = cloud.parse_webhook(load(name))
    assert len(events) == 1
    assert isinstance(events[0], InboundMessage)
    return events[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_message_types_normalize(name: str) -> None:
    message = only(name)
    for field, expected in {**MARIA, **CASES[name]}.items():
        assert getattr(message, field) == expected, field
    assert message.key_id.startswith("wamid.")


def test_contacts_card_keeps_phones_and_the_full_card() -> None:
    message = only("cloud_contacts")
    assert message.type == "contacts"
    [card] = message.payload["contacts"]
    assert card["name"] == "João Pereira"
    assert card["phones"] == [{"phone": "+5521998765432", "wa_id": "5521998765432"}]
    assert card["emails"] == ["joao@example.com"]
    assert card["card"]["org"] == {"company": "Pereira Ltda"}


@pytest.mark.parametrize(("name", "original_type"), [("cloud_unsupported", "unsupported")])
def test_unknown_types_are_kept_with_the_raw_message(name: str, original_type: str) -> None:
    message = only(name)
    body = load(name)
    assert message.type == "unsupported"
    assert message.payload["original_type"] == original_type
    assert message.payload["raw"] == body["entry"][0]["changes"][0]["value"]["messages"][0]


def test_batched_delivery_yields_every_message_of_every_entry() -> None:
    events = cloud.parse_webhook(load("cloud_batch"))
    assert [(e.body, e.push_name, e.instance) for e in events if isinstance(e, InboundMessage)] == [
        ("primeira", "Maria Souza", "106540352242922"),
        ("segunda", "Carlos Lima", "106540352242922"),
        ("terceira", "Paula", "106540352240000"),
    ]
    assert len({e.key_id for e in events if isinstance(e, InboundMessage)}) == 3


def test_statuses_normalize_with_errors_and_callback_data() -> None:
    events = cloud.parse_webhook(load("cloud_statuses"))
    assert all(isinstance(e, StatusUpdate) for e in events)
    statuses = [e for e in events if isinstance(e, StatusUpdate)]
    assert [(s.status, s.timestamp) for s in statuses] == [
        ("sent", 1767225601),
        ("delivered", 1767225602),
        ("read", 1767225610),
        ("failed", 1767225620),
    ]
    assert statuses[0].callback_data == "send-42"
    assert statuses[0].remote_jid == "5511987654321@s.whatsapp.net"
    assert statuses[0].from_me is True
    assert statuses[3].error is not None
    assert statuses[3].error["code"] == 131047
    assert statuses[3].error["details"].startswith("Message failed to send")
    assert statuses[0].error is None


def test_user_known_only_by_bsuid_is_keyed_by_it() -> None:
    message = only("cloud_bsuid")
    assert message.remote_jid == "BR.1502576394655843@bsuid"
    assert message.user_id == "BR.1502576394655843"
    assert message.username == "@ana.lima"
    assert message.phone is None
    assert message.push_name == "Ana"


def test_message_with_phone_and_bsuid_names_both() -> None:
    message = only("cloud_bsuid_with_phone")
    assert message.remote_jid == "5511987654321@s.whatsapp.net"
    assert (message.phone, message.user_id) == ("+5511987654321", "BR.1502576394655843")
    assert message.username == "@maria.souza"


@pytest.mark.parametrize(
    ("name", "sender", "change"),
    [
        (
            "cloud_system",  # before BSUIDs: the new number only
            "5511987654321@s.whatsapp.net",
            {"phone": "+5511912345678", "user_id": None, "previous_user_id": None},
        ),
        (
            "cloud_user_changed_number",
            "5511987654321@s.whatsapp.net",
            {
                "phone": "+5511912345678",
                "user_id": "BR.7788990011223344",
                "previous_user_id": "BR.1502576394655843",
            },
        ),
        (
            "cloud_user_changed_user_id",  # no sender but the previous BSUID
            "BR.1502576394655843@bsuid",
            {
                "phone": None,
                "user_id": "BR.5566778899001122",
                "previous_user_id": "BR.1502576394655843",
            },
        ),
    ],
)
def test_identity_change_system_messages(name: str, sender: str, change: dict[str, Any]) -> None:
    message = only(name)
    assert (message.type, message.remote_jid) == ("system", sender)
    assert message.payload["identity_change"] == change
    assert message.body


def test_contact_request_reply_carries_the_shared_phone() -> None:
    message = only("cloud_contact_request")
    assert (message.remote_jid, message.phone) == ("BR.1502576394655843@bsuid", None)
    assert message.payload["origin"] == "contact_request"
    assert message.payload["contacts"][0]["phones"][0]["phone"] == "+5521998765432"


def test_statuses_of_a_bsuid_recipient() -> None:
    first, second = cloud.parse_webhook(load("cloud_statuses_bsuid"))
    assert isinstance(first, StatusUpdate) and isinstance(second, StatusUpdate)
    assert (first.remote_jid, first.user_id) == ("BR.1502576394655843@bsuid", "BR.1502576394655843")
    assert second.remote_jid == "5511987654321@s.whatsapp.net"
    assert second.user_id == "BR.1502576394655843"


def test_bsuid_alongside_phone_is_an_alias() -> None:
    body = load("cloud_text")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"][0]["from_user_id"] = "BR.99887766"
    value["contacts"][0]["user_id"] = "BR.99887766"
    [message] = cloud.parse_webhook(body)
    assert isinstance(message, InboundMessage)
    assert message.remote_jid == "5511987654321@s.whatsapp.net"
    assert message.user_id == "BR.99887766"


def test_business_app_echo_is_our_own_message() -> None:
    message = only("cloud_echo")
    assert message.from_me is True
    assert message.remote_jid == "5511987654321@s.whatsapp.net"
    assert message.push_name is None
    assert message.body == "Respondi pelo app"


def test_changes_without_conversation_data_are_skipped() -> None:
    body = load("cloud_template_status_update")
    body["entry"][0]["changes"][0]["field"] = "account_update"  # a field zapflow does not use
    assert cloud.parse_webhook(body) == []


def test_a_template_status_change_is_a_template_update() -> None:
    [update] = cloud.parse_webhook(load("cloud_template_status_update"))
    assert isinstance(update, TemplateUpdate)
    assert (update.template_id, update.name, update.language, update.status) == (
        "1234567890",
        "lembrete_consulta",
        "pt_BR",
        "APPROVED",
    )
    assert update.account_id == "102290129340398" and update.reason is None


def test_reaction_removal_has_no_emoji() -> None:
    body = load("cloud_reaction")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"].pop("emoji")
    [message] = cloud.parse_webhook(body)
    assert isinstance(message, InboundMessage)
    assert message.payload["emoji"] is None


def _with_message(**fields: Any) -> dict[str, Any]:
    body = load("cloud_text")
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update(fields)
    for key in [k for k, v in fields.items() if v is None]:
        message.pop(key)
    return body


WABA = "whatsapp_business_account"


def _without_sender() -> dict[str, Any]:
    body = _with_message(**{"from": None})
    body["entry"][0]["changes"][0]["value"].pop("contacts")
    return body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "body must be a JSON object, got list"),
        ({"entry": []}, "'object' must be 'whatsapp_business_account', got None"),
        ({"object": "page", "entry": []}, "got 'page'"),
        ({"object": WABA}, "'entry' must be a list"),
        ({"object": WABA, "entry": {}}, "'entry' must be a list"),
        ({"object": WABA, "entry": ["x"]}, "entry[0] must be an object"),
        (
            {"object": WABA, "entry": [{"changes": {}}]},
            "entry[0].changes must be a list",
        ),
        (
            {
                "object": "whatsapp_business_account",
                "entry": [{"changes": [{"field": "messages"}]}],
            },
            "entry[0].changes[0].value must be an object",
        ),
        (_with_message(id=None), "entry[0].changes[0].value.messages[0]: missing 'id'"),
        (_without_sender(), "messages[0]: missing 'from'"),
    ],
)
def test_malformed_payloads_name_what_is_wrong(body: Any, fragment: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        cloud.parse_webhook(body)
    assert fragment in str(caught.value)


def test_malformed_payload_is_a_value_error() -> None:
    assert issubclass(MalformedPayload, ValueError)


@pytest.mark.parametrize(
    ("name", "phone", "user_id", "who"),
    [
        ("cloud_user_preferences", "+16505551234", None, "Sheena Nelson"),
        ("cloud_user_preferences_bsuid", None, "BR.1502576394655843", "Ana"),
    ],
)
def test_a_marketing_preference_names_the_user_by_phone_or_bsuid(
    name: str, phone: str | None, user_id: str | None, who: str
) -> None:
    [event] = cloud.parse_webhook(load(name))
    assert isinstance(event, PreferenceUpdate)
    assert (event.category, event.value) == ("marketing_messages", "stop")
    assert (event.phone, event.user_id, event.name) == (phone, user_id, who)
    assert event.instance == "106540352242922"
    assert event.detail == "User requested to stop marketing messages"
    assert event_from_dict(event_to_dict(event)) == event  # as the inbox stores it


def test_a_marketing_preference_without_a_user_is_malformed() -> None:
    body = load("cloud_user_preferences")
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = []
    del value["user_preferences"][0]["wa_id"]
    with pytest.raises(MalformedPayload, match="names no user"):
        cloud.parse_webhook(body)
