from __future__ import annotations

import pickle
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.fixtures.provider_server import ProviderServer, start_provider_server
from zapflow.config import load_settings
from zapflow.whatsapp import (
    CloudApiClient,
    EvolutionClient,
    OutboundMedia,
    OutboundMessage,
    OutboundTemplate,
    ProviderClient,
    ProviderError,
    client_for,
)
from zapflow.whatsapp.base import parse_retry_after

PHONE_NUMBER_ID = "106540352242922"
TOKEN = "EAAGm0PX4ZCpsBA-test-token"
INSTANCE = "loja centro"
API_KEY = "B6D711FCDE4D4FD5936544120E713976"
TO = "+5511987654321"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def cloud_client(server: ProviderServer, http: httpx.AsyncClient, **kw: Any) -> CloudApiClient:
    return CloudApiClient(server.cloud_base_url, http, PHONE_NUMBER_ID, TOKEN, **kw)


def evolution_client(server: ProviderServer, http: httpx.AsyncClient, **kw: Any) -> EvolutionClient:
    return EvolutionClient(server.evolution_base_url, http, INSTANCE, API_KEY, **kw)


def text(**kw: Any) -> OutboundMessage:
    return OutboundMessage(type="text", to=kw.pop("to", TO), text="Olá, Maria!", **kw)


def media(kind: Any, **kw: Any) -> OutboundMessage:
    url = f"https://cdn.example.com/files/{kind}.bin"
    return OutboundMessage(type="media", to=TO, media=OutboundMedia(url=url, kind=kind, **kw))


# --- Cloud API request shapes ------------------------------------------------------------------


async def test_cloud_text_request_and_result(provider_server: ProviderServer, http) -> None:
    result = await cloud_client(provider_server, http).send(text())
    [request] = provider_server.requests
    assert request.method == "POST"
    assert request.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511987654321",
        "type": "text",
        "text": {"body": "Olá, Maria!", "preview_url": False},
    }
    assert result.provider_message_id.startswith("wamid.")
    assert result.raw["messages"][0]["id"] == result.provider_message_id


async def test_cloud_reply_and_idempotency_key(provider_server: ProviderServer, http) -> None:
    msg = text(to="5511987654321@s.whatsapp.net", reply_to_key_id="wamid.ABC", idempotency_key="k1")
    await cloud_client(provider_server, http).send(msg)
    body = provider_server.requests[0].json
    assert body["to"] == "5511987654321"
    assert body["context"] == {"message_id": "wamid.ABC"}
    assert body["biz_opaque_callback_data"] == "k1"


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        ("image", {"caption": "Foto"}, {"caption": "Foto"}),
        ("video", {"caption": "Vídeo"}, {"caption": "Vídeo"}),
        (
            "document",
            {"caption": "Contrato", "filename": "contrato.pdf", "mime_type": "application/pdf"},
            {"caption": "Contrato", "filename": "contrato.pdf"},
        ),
        ("audio", {"caption": "ignored"}, {}),
        ("sticker", {}, {}),
    ],
)
async def test_cloud_media_request(
    provider_server: ProviderServer, http, kind: str, options: dict, expected: dict
) -> None:
    await cloud_client(provider_server, http).send(media(kind, **options))
    body = provider_server.requests[0].json
    assert body["type"] == kind
    assert body[kind] == {"link": f"https://cdn.example.com/files/{kind}.bin", **expected}


async def test_cloud_template_from_params(provider_server: ProviderServer, http) -> None:
    template = OutboundTemplate(name="lembrete_consulta", language="pt_BR", params=["Maria", "9h"])
    await cloud_client(provider_server, http).send(
        OutboundMessage(type="template", to=TO, template=template)
    )
    assert provider_server.requests[0].json["template"] == {
        "name": "lembrete_consulta",
        "language": {"code": "pt_BR"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Maria"}, {"type": "text", "text": "9h"}],
            }
        ],
    }


async def test_cloud_template_components_pass_through(
    provider_server: ProviderServer, http
) -> None:
    components = [{"type": "header", "parameters": [{"type": "image", "image": {"link": "u"}}]}]
    template = OutboundTemplate(name="promo", language="pt_BR", components=components)
    await cloud_client(provider_server, http).send(
        OutboundMessage(type="template", to=TO, template=template)
    )
    assert provider_server.requests[0].json["template"]["components"] == components


async def test_cloud_bsuid_goes_in_recipient(provider_server: ProviderServer, http) -> None:
    await cloud_client(provider_server, http).send(text(to="BR.1502576394655843@bsuid"))
    body = provider_server.requests[0].json
    assert body["recipient"] == "BR.1502576394655843"
    assert "to" not in body


# --- Evolution request shapes ------------------------------------------------------------------


async def test_evolution_text_request_and_result(provider_server: ProviderServer, http) -> None:
    result = await evolution_client(provider_server, http).send(text(reply_to_key_id="3EB0AA"))
    [request] = provider_server.requests
    assert request.path == "/message/sendText/loja centro"
    assert request.headers["apikey"] == API_KEY
    assert request.json == {
        "number": "5511987654321",
        "text": "Olá, Maria!",
        "quoted": {"key": {"id": "3EB0AA"}},
    }
    assert result.provider_message_id == result.raw["key"]["id"]
    assert result.raw["key"]["fromMe"] is True


async def test_evolution_media_request(provider_server: ProviderServer, http) -> None:
    msg = media("document", mime_type="application/pdf", caption="Contrato")
    await evolution_client(provider_server, http).send(msg)
    request = provider_server.requests[0]
    assert request.path.startswith("/message/sendMedia/")
    assert request.json == {
        "number": "5511987654321",
        "mediatype": "document",
        "media": "https://cdn.example.com/files/document.bin",
        "mimetype": "application/pdf",
        "caption": "Contrato",
        "fileName": "document.bin",
    }


async def test_evolution_image_and_sticker_requests(provider_server: ProviderServer, http) -> None:
    client = evolution_client(provider_server, http)
    await client.send(media("image", mime_type="image/jpeg", caption="Foto"))
    await client.send(media("sticker"))
    image, sticker = provider_server.requests
    assert image.json["mediatype"] == "image"
    assert "fileName" not in image.json
    assert sticker.path.startswith("/message/sendSticker/")
    assert sticker.json == {
        "number": "5511987654321",
        "sticker": "https://cdn.example.com/files/sticker.bin",
    }


async def test_evolution_template_request(provider_server: ProviderServer, http) -> None:
    template = OutboundTemplate(name="lembrete_consulta", language="pt_BR", params=["Maria"])
    await evolution_client(provider_server, http).send(
        OutboundMessage(type="template", to=TO, template=template)
    )
    request = provider_server.requests[0]
    assert request.path.startswith("/message/sendTemplate/")
    assert request.json["name"] == "lembrete_consulta"
    assert request.json["language"] == "pt_BR"
    assert request.json["components"][0]["parameters"] == [{"type": "text", "text": "Maria"}]


@pytest.mark.parametrize(
    ("to", "number"),
    [
        ("120363025987654321@g.us", "120363025987654321@g.us"),
        ("207123456789012@lid", "207123456789012@lid"),
        ("5511987654321:3@s.whatsapp.net", "5511987654321"),
        ("+55 (11) 98765-4321", "5511987654321"),
    ],
)
async def test_evolution_number_forms(
    provider_server: ProviderServer, http, to: str, number: str
) -> None:
    await evolution_client(provider_server, http).send(text(to=to))
    assert provider_server.requests[0].json["number"] == number


# --- errors, for both clients ------------------------------------------------------------------

Factory = Callable[..., ProviderClient]
CLIENTS = pytest.mark.parametrize("make", [cloud_client, evolution_client], ids=["cloud", "evo"])


@CLIENTS
async def test_429_with_retry_after_is_retryable(
    provider_server: ProviderServer, http, make: Factory
) -> None:
    provider_server.fail_next(1, status=429, retry_after=7)
    with pytest.raises(ProviderError) as caught:
        await make(provider_server, http).send(text())
    error = caught.value
    assert (error.status_code, error.retryable, error.retry_after) == (429, True, 7.0)
    assert error.provider == make(provider_server, http).provider


@CLIENTS
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_retryable(
    provider_server: ProviderServer, http, make: Factory, status: int
) -> None:
    provider_server.fail_next(1, status=status)
    with pytest.raises(ProviderError) as caught:
        await make(provider_server, http).send(text())
    assert caught.value.status_code == status
    assert caught.value.retryable is True
    assert caught.value.retry_after is None


@CLIENTS
async def test_a_lost_answer_is_not_resent(
    provider_server: ProviderServer, http, make: Factory
) -> None:
    """The provider has the request and may take the message: resending could send it twice."""
    provider_server.delay_next(1, seconds=5)
    with pytest.raises(ProviderError) as caught:
        await make(provider_server, http, timeout=0.2).send(text())
    assert caught.value.status_code is None
    assert caught.value.retryable is False
    assert "ReadTimeout" in caught.value.message and "not resent" in caught.value.message


@CLIENTS
async def test_connection_refused_is_retryable(http, make: Factory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    closed = SimpleNamespace(cloud_base_url=f"{base}/v21.0", evolution_base_url=base)
    with pytest.raises(ProviderError) as caught:
        await make(closed, http).send(text())
    assert caught.value.status_code is None
    assert caught.value.retryable is True


@CLIENTS
async def test_failures_are_consumed_in_order(
    provider_server: ProviderServer, http, make: Factory
) -> None:
    provider_server.fail_next(2, status=503)
    client = make(provider_server, http)
    for _ in range(2):
        with pytest.raises(ProviderError):
            await client.send(text())
    assert (await client.send(text())).provider_message_id
    assert [r.status for r in provider_server.requests] == [
        503,
        503,
        200 if make is cloud_client else 201,
    ]


async def test_cloud_400_is_permanent_with_meta_message(
    provider_server: ProviderServer, http
) -> None:
    body = {
        "error": {
            "message": "(#131030) Recipient phone number not in allowed list",
            "type": "OAuthException",
            "code": 131030,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Recipient phone number not in allowed list: Add recipient phone number",
            },
            "fbtrace_id": "AbCdEfGh123",
        }
    }
    provider_server.fail_next(1, status=400, body=body)
    with pytest.raises(ProviderError) as caught:
        await cloud_client(provider_server, http).send(text())
    error = caught.value
    assert (error.status_code, error.retryable, error.code) == (400, False, 131030)
    assert error.message.startswith("(#131030) Recipient phone number not in allowed list: ")
    assert error.body == body
    assert "permanent" in str(error)


async def test_cloud_throttling_code_is_retryable_even_on_400(
    provider_server: ProviderServer, http
) -> None:
    body = {"error": {"message": "(#131056) Pair rate limit hit", "code": 131056}}
    provider_server.fail_next(1, status=400, body=body)
    with pytest.raises(ProviderError) as caught:
        await cloud_client(provider_server, http).send(text())
    assert caught.value.retryable is True


async def test_evolution_400_is_permanent_with_response_message(
    provider_server: ProviderServer, http
) -> None:
    body = {
        "status": 400,
        "error": "Bad Request",
        "response": {
            "message": [
                {"jid": "5511987654321@s.whatsapp.net", "exists": False, "number": "5511987654321"}
            ]
        },
    }
    provider_server.fail_next(1, status=400, body=body)
    with pytest.raises(ProviderError) as caught:
        await evolution_client(provider_server, http).send(text())
    error = caught.value
    assert (error.status_code, error.retryable) == (400, False)
    assert error.message == "not on WhatsApp: 5511987654321"


async def test_evolution_404_lists_string_messages(provider_server: ProviderServer, http) -> None:
    body = {
        "status": 404,
        "error": "Not Found",
        "response": {"message": ['The "loja centro" instance does not exist']},
    }
    provider_server.fail_next(1, status=404, body=body)
    with pytest.raises(ProviderError) as caught:
        await evolution_client(provider_server, http).send(text())
    assert caught.value.message == 'The "loja centro" instance does not exist'
    assert caught.value.retryable is False


@CLIENTS
async def test_non_json_error_body_is_the_message(
    provider_server: ProviderServer, http, make: Factory
) -> None:
    provider_server.fail_next(1, status=403, body="Forbidden by proxy")
    with pytest.raises(ProviderError) as caught:
        await make(provider_server, http).send(text())
    assert caught.value.message == "Forbidden by proxy"
    assert caught.value.retryable is False


@pytest.mark.parametrize("make", [cloud_client, evolution_client], ids=["cloud", "evo"])
async def test_wrong_credentials_are_permanent(http, make: Factory) -> None:
    with (
        start_provider_server(cloud_token="right", evolution_api_key="right") as server,
        pytest.raises(ProviderError) as caught,
    ):
        await make(server, http).send(text())
    assert caught.value.status_code == 401
    assert caught.value.retryable is False
    assert caught.value.message


@CLIENTS
async def test_success_without_id_is_a_permanent_error(
    provider_server: ProviderServer, http, make: Factory
) -> None:
    provider_server.fail_next(1, status=200, body={"ok": True})
    with pytest.raises(ProviderError) as caught:
        await make(provider_server, http).send(text())
    assert caught.value.retryable is False
    assert "without a message id" in caught.value.message


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12", now=now) == 12.0
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_provider_error_survives_pickling() -> None:
    error = ProviderError(429, "slow", retryable=True, retry_after=3.0, code=4, provider="cloud")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status_code, copy.message, copy.retryable, copy.retry_after, copy.code) == (
        429,
        "slow",
        True,
        3.0,
        4,
    )


# --- factory -----------------------------------------------------------------------------------


async def test_client_for_picks_the_provider(provider_server: ProviderServer, http) -> None:
    settings = load_settings(
        cloud_api_base_url=provider_server.cloud_base_url,
        evolution_base_url=provider_server.evolution_base_url,
    )
    cloud = client_for(
        "cloud", settings=settings, http=http, phone_number_id=PHONE_NUMBER_ID, access_token=TOKEN
    )
    evo = client_for(
        "evolution", settings=settings, http=http, instance_name=INSTANCE, api_key=API_KEY
    )
    assert isinstance(cloud, CloudApiClient)
    assert isinstance(evo, EvolutionClient)
    await cloud.send(text())
    await evo.send(text())
    paths = [r.path for r in provider_server.requests]
    assert paths == [f"/v21.0/{PHONE_NUMBER_ID}/messages", "/message/sendText/loja centro"]


@pytest.mark.parametrize(
    ("provider", "fields", "fragment"),
    [
        ("cloud", {"phone_number_id": "1"}, "phone_number_id and access_token"),
        ("evolution", {"api_key": "k"}, "instance_name and api_key"),
        ("twilio", {}, "unknown WhatsApp provider 'twilio'"),
    ],
)
async def test_client_for_refuses_incomplete_instances(
    http, provider: str, fields: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        client_for(provider, settings=load_settings(), http=http, **fields)
