"""Evolution API v2 (Baileys): webhook authenticity, webhook normalization, outbound sends.

Handled events: ``messages.upsert`` and ``send.message`` (messages, ours or theirs),
``messages.update`` (receipts), ``messages.delete`` and a revoking ``protocolMessage`` (deleted
statuses), ``connection.update``. Other events (contacts, chats, presence, QR codes...) are
acknowledged and skipped. Event names arrive as ``messages.upsert``, ``MESSAGES_UPSERT`` or, with
"webhook by events", as the URL suffix ``messages-upsert``; ``normalize_event`` maps them all.

A 1:1 chat addressed by ``@lid`` is keyed by the phone JID when Evolution gives the phone alias
(``remoteJidAlt``, ``senderPn``, ``previousRemoteJid``); both ``lid`` and ``phone`` are exposed.
Media bytes (``base64`` webhooks) are not carried: the message key id is the handle to fetch them.
Posts to ``status@broadcast`` are contacts' stories, not chat messages, and are skipped.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jwt

from zapflow.whatsapp.base import ProviderClient
from zapflow.whatsapp.errors import MalformedPayload
from zapflow.whatsapp.jid import (
    e164,
    is_group,
    is_lid,
    is_user_jid,
    jid_from_phone,
    normalize_jid,
    phone_from_jid,
    split_jid,
)
from zapflow.whatsapp.types import (
    ConnectionUpdate,
    DeliveryStatus,
    InboundMessage,
    MessageType,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    epoch,
    media_dict,
)

EvolutionEvent = InboundMessage | StatusUpdate | ConnectionUpdate
Content = tuple[MessageType, str | None, dict[str, Any] | None, dict[str, Any]]

MESSAGES_UPSERT = "messages.upsert"
SEND_MESSAGE = "send.message"
MESSAGES_UPDATE = "messages.update"
MESSAGES_DELETE = "messages.delete"
CONNECTION_UPDATE = "connection.update"
STATUS_BROADCAST = "status@broadcast"

_STATUSES: dict[str | int, DeliveryStatus] = {
    "ERROR": "failed",
    "SERVER_ACK": "sent",
    "DELIVERY_ACK": "delivered",
    "READ": "read",
    "PLAYED": "read",
    "DELETED": "deleted",
    0: "failed",
    2: "sent",
    3: "delivered",
    4: "read",
    5: "read",
}
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "deviceSentMessage",
)
_NOT_CONTENT = frozenset(
    {"messageContextInfo", "senderKeyDistributionMessage", "base64", "mediaUrl", "speechToText"}
)
_MEDIA_KEYS: dict[str, MessageType] = {
    "imageMessage": "image",
    "videoMessage": "video",
    "ptvMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
    "stickerMessage": "sticker",
}
_REVOKE = (0, "REVOKE")
_AD_MEDIA_TYPES: dict[Any, str] = {1: "image", "IMAGE": "image", 2: "video", "VIDEO": "video"}
_REFERRAL_KEYS = {
    "sourceUrl": "source_url",
    "sourceId": "source_id",
    "sourceType": "source_type",
    "title": "headline",
    "body": "body",
    "thumbnailUrl": "thumbnail_url",
    "ctwaClid": "ctwa_clid",
}


# --- authenticity ---------------------------------------------------------------------------


def authenticate(
    body: Any,
    headers: Mapping[str, str],
    instance_api_key: str | None,
    jwt_key: str | None,
) -> bool:
    """True when the delivery carries the instance token (body ``apikey`` or ``apikey`` header)
    or an HS256 ``Authorization: Bearer`` JWT signed with the instance's ``jwt_key`` (see
    ``instance_jwt_key``), with an ``exp`` at most ``JWT_MAX_LIFETIME`` ahead."""
    if instance_api_key and _api_key_matches(body, headers, instance_api_key):
        return True
    return bool(jwt_key) and _jwt_valid(headers, jwt_key or "")


# Evolution signs its webhook JWTs for 10 minutes; a longer-lived token is a replayable credential
JWT_MAX_LIFETIME = 3600


def instance_jwt_key(operator_key: str | None, webhook_secret: str) -> str | None:
    """The key one instance's Evolution webhook signs its JWTs with (the ``jwt_key`` of its
    webhook headers): derived from the operator's ``ZAPFLOW_EVOLUTION_JWT_KEY`` and the
    instance's URL token, so a token signed for one instance is refused at every other's URL."""
    if not operator_key:
        return None
    message = b"evolution-webhook-jwt:" + webhook_secret.encode()
    return hmac.new(operator_key.encode(), message, "sha256").hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    found = headers.get(name)
    if found is not None:
        return found
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _same(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _api_key_matches(body: Any, headers: Mapping[str, str], expected: str) -> bool:
    from_body = body.get("apikey") if isinstance(body, dict) else None
    return _same(from_body, expected) or _same(_header(headers, "apikey"), expected)


def _jwt_valid(headers: Mapping[str, str], key: str) -> bool:
    scheme, _, token = (_header(headers, "authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    try:
        claims = jwt.decode(
            token.strip(),
            key,
            algorithms=["HS256"],
            options={"verify_aud": False, "require": ["exp"]},
            leeway=30,
        )
    except jwt.InvalidTokenError:
        return False
    exp = claims["exp"]
    return isinstance(exp, int | float) and exp <= time.time() + JWT_MAX_LIFETIME


# --- inbound --------------------------------------------------------------------------------


def normalize_event(name: str) -> str:
    """``MESSAGES_UPSERT`` / ``messages-upsert`` / ``messages.upsert`` → ``messages.upsert``."""
    return name.strip().strip("/").lower().replace("_", ".").replace("-", ".")


def event_from_url_suffix(suffix: str) -> str:
    """The event of a "webhook by events" delivery, from its URL's last segment."""
    return normalize_event(suffix.rstrip("/").rsplit("/", 1)[-1])


@dataclass(frozen=True)
class _Envelope:
    instance: str | None
    timestamp: int | None


def parse_webhook(body: Any, *, event: str | None = None) -> list[EvolutionEvent]:
    """Normalize one delivery; ``event`` (e.g. from the URL suffix) overrides the body's."""
    if not isinstance(body, dict):
        raise MalformedPayload(f"body must be a JSON object, got {type(body).__name__}")
    name = event or body.get("event")
    if not isinstance(name, str) or not name.strip():
        raise MalformedPayload("missing 'event'")
    handler = _EVENT_HANDLERS.get(normalize_event(name))
    if handler is None:
        return []
    instance = body.get("instance")
    envelope = _Envelope(
        instance=instance if isinstance(instance, str) else None,
        timestamp=_iso_epoch(body.get("date_time")),
    )
    events: list[EvolutionEvent] = []
    for i, item in enumerate(_items(body)):
        if not isinstance(item, dict):
            raise MalformedPayload(f"data[{i}] must be an object")
        events.extend(handler(item, envelope, f"data[{i}]"))
    return events


def _part(obj: dict[str, Any], name: str) -> dict[str, Any]:
    found = obj.get(name)
    return found if isinstance(found, dict) else {}


def _items(body: dict[str, Any]) -> list[Any]:
    data = body.get("data")
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise MalformedPayload(f"'data' must be an object or a list, got {type(data).__name__}")


def _iso_epoch(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return epoch(datetime.fromisoformat(value).timestamp())
    except (ValueError, OverflowError):
        return None


def _timestamp(value: Any) -> int | None:
    if isinstance(value, dict):  # a protobuf Long
        low, high = value.get("low") or 0, value.get("high") or 0
        if type(low) is not int or type(high) is not int:
            return None
        value = low + (high << 32)
    return epoch(value)


def _message_events(item: dict[str, Any], env: _Envelope, where: str) -> list[EvolutionEvent]:
    key = _key(item, where)
    if key["remoteJid"] == STATUS_BROADCAST:
        return []
    outer = _part(item, "message")
    content_key, inner = _content_part(_unwrap(outer))
    if content_key == "protocolMessage" and inner.get("type") in _REVOKE:
        return [_revoked(key, inner, item, env)]
    ids = _identity(key, item)
    kind, body, media, payload = _content(content_key, inner, outer, key["id"])
    if kind == "unsupported" and not outer:
        payload["raw"] = item
    context = _context(inner, item)
    payload.update(_context_payload(context))
    from_me = bool(key.get("fromMe"))
    push_name = item.get("pushName")
    message = InboundMessage(
        key_id=key["id"],
        remote_jid=ids.remote_jid,
        from_me=from_me,
        type=kind,
        provider="evolution",
        instance=env.instance,
        participant=ids.participant,
        phone=ids.phone,
        lid=ids.lid,
        push_name=push_name if isinstance(push_name, str) and push_name and not from_me else None,
        body=body,
        media=media,
        payload=payload,
        reply_to_key_id=context.get("stanzaId") or None,
        timestamp=_timestamp(item.get("messageTimestamp")) or env.timestamp,
    )
    return [message]


def _key(item: dict[str, Any], where: str) -> dict[str, Any]:
    key = item.get("key")
    if not isinstance(key, dict):
        raise MalformedPayload(f"{where}: missing 'key'")
    for name in ("id", "remoteJid"):
        if not isinstance(key.get(name), str) or not key[name]:
            raise MalformedPayload(f"{where}.key: missing '{name}'")
    return key


@dataclass(frozen=True)
class _Identity:
    remote_jid: str
    participant: str | None
    phone: str | None
    lid: str | None


def _identity(key: dict[str, Any], item: dict[str, Any]) -> _Identity:
    remote = normalize_jid(key["remoteJid"])
    participant = None
    if is_group(remote):
        participant = key.get("participant") or item.get("participant")
        names = ("participant", "participantAlt", "participantPn", "participantLid")
        candidates = [key.get(name) for name in names] + [item.get("participant")]
    else:
        names = ("remoteJidAlt", "senderPn", "senderLid", "previousRemoteJid")
        candidates = [key["remoteJid"]] + [key.get(name) for name in names]
    jids = [normalize_jid(c) for c in candidates if isinstance(c, str) and c]
    phone = next((phone_from_jid(j) for j in jids if is_user_jid(j)), None)
    lid = next((j for j in jids if is_lid(j)), None)
    if not is_group(remote) and phone:
        remote = jid_from_phone(phone)
    return _Identity(
        remote_jid=remote,
        participant=normalize_jid(participant) if isinstance(participant, str) else None,
        phone=phone,
        lid=lid,
    )


def _unwrap(message: dict[str, Any]) -> dict[str, Any]:
    for _ in range(4):
        wrapper = next((w for w in _WRAPPERS if isinstance(message.get(w), dict)), None)
        inner = message[wrapper].get("message") if wrapper else None
        if not isinstance(inner, dict):
            return message
        message = inner
    return message


def _content_part(message: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    for name, value in message.items():
        if name in _NOT_CONTENT:
            continue
        if isinstance(value, dict):
            return name, value
        if name == "conversation" and isinstance(value, str):
            return name, {"text": value}
    return None, {}


def _content(
    name: str | None, inner: dict[str, Any], outer: dict[str, Any], key_id: str
) -> Content:
    if name in _MEDIA_KEYS:
        return _media(_MEDIA_KEYS[name], inner, outer, key_id)
    handler = _HANDLERS.get(name or "")
    if handler is None:
        return "unsupported", None, None, {"raw": outer, "original_type": name}
    return handler(inner)


def _text(inner: dict[str, Any]) -> Content:
    return "text", inner.get("text"), None, {}


def _media(kind: MessageType, inner: dict[str, Any], outer: dict[str, Any], key_id: str) -> Content:
    caption = inner.get("caption") or None
    media = media_dict(
        id=key_id,
        url=outer.get("mediaUrl") or inner.get("url"),
        mime_type=inner.get("mimetype"),
        caption=caption,
        filename=(inner.get("fileName") or inner.get("title")) if kind == "document" else None,
        voice=bool(inner.get("ptt")),
        sha256=_b64(inner.get("fileSha256")),
    )
    payload: dict[str, Any] = {}
    if inner.get("isAnimated"):
        payload["animated"] = True
    if isinstance(outer.get("speechToText"), str):
        payload["transcript"] = outer["speechToText"]
    return kind, caption, media, payload


def _b64(value: Any) -> str | None:
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        octets = value["data"]
    elif isinstance(value, dict) and all(k.isdigit() for k in value):
        octets = [value[k] for k in sorted(value, key=int)]
    else:
        return None
    try:
        return base64.b64encode(bytes(octets)).decode()
    except (TypeError, ValueError):  # not a list of 0-255 numbers
        return None


def _location(inner: dict[str, Any]) -> Content:
    payload = {
        "latitude": inner.get("degreesLatitude"),
        "longitude": inner.get("degreesLongitude"),
        "name": inner.get("name"),
        "address": inner.get("address"),
        "url": inner.get("url"),
    }
    return "location", inner.get("caption") or None, None, payload


def _live_location(inner: dict[str, Any]) -> Content:
    kind, body, media, payload = _location(inner)
    return kind, body, media, {**payload, "live": True}


def _contact(inner: dict[str, Any]) -> Content:
    return "contacts", None, None, {"contacts": [_vcard_card(inner)]}


def _contacts_array(inner: dict[str, Any]) -> Content:
    contacts = inner.get("contacts")
    cards = (
        [_vcard_card(c) for c in contacts if isinstance(c, dict)]
        if isinstance(contacts, list)
        else []
    )
    return "contacts", None, None, {"contacts": cards}


def _vcard_card(contact: dict[str, Any]) -> dict[str, Any]:
    vcard = contact.get("vcard") or ""
    vcard = vcard if isinstance(vcard, str) else ""
    name, phones, emails = contact.get("displayName"), [], []
    for line in vcard.splitlines():
        head, _, value = line.partition(":")
        field, *params = head.split(";")
        field = field.split(".")[-1].upper()
        if field == "FN" and value and not name:
            name = value.strip()
        elif field == "TEL":
            waids = [p.split("=", 1)[1] for p in params if p.lower().startswith("waid=")]
            wa_id = waids[0] if waids else None
            phones.append({"phone": e164(value), "wa_id": wa_id})
        elif field == "EMAIL" and value:
            emails.append(value.strip())
    return {"name": name, "phones": phones, "emails": emails, "vcard": vcard or None, "card": None}


def _buttons_response(inner: dict[str, Any]) -> Content:
    title = inner.get("selectedDisplayText")
    payload = {
        "interactive_type": "button_reply",
        "id": inner.get("selectedButtonId"),
        "title": title,
        "description": None,
    }
    return "interactive", title, None, payload


def _list_response(inner: dict[str, Any]) -> Content:
    reply = _part(inner, "singleSelectReply")
    payload = {
        "interactive_type": "list_reply",
        "id": reply.get("selectedRowId"),
        "title": inner.get("title"),
        "description": inner.get("description"),
    }
    return "interactive", inner.get("title"), None, payload


def _interactive_response(inner: dict[str, Any]) -> Content:
    flow = _part(inner, "nativeFlowResponseMessage")
    body = _part(inner, "body")
    payload = {
        "interactive_type": "nfm_reply",
        "name": flow.get("name"),
        "response": flow.get("paramsJson"),
    }
    return "interactive", body.get("text"), None, payload


def _template_button_reply(inner: dict[str, Any]) -> Content:
    text = inner.get("selectedDisplayText")
    return "button", text, None, {"payload": inner.get("selectedId"), "text": text}


def _reaction(inner: dict[str, Any]) -> Content:
    target = _part(inner, "key")
    payload = {"emoji": inner.get("text") or None, "target_key_id": target.get("id")}
    return "reaction", None, None, payload


def _template(inner: dict[str, Any]) -> Content:
    hydrated = inner.get("hydratedTemplate") or inner.get("hydratedFourRowTemplate") or {}
    body = hydrated.get("hydratedContentText") if isinstance(hydrated, dict) else None
    name = hydrated.get("templateId") if isinstance(hydrated, dict) else None
    return "template", body, None, {"name": name, "raw": inner}


_HANDLERS: dict[str, Callable[[dict[str, Any]], Content]] = {
    "conversation": _text,
    "extendedTextMessage": _text,
    "locationMessage": _location,
    "liveLocationMessage": _live_location,
    "contactMessage": _contact,
    "contactsArrayMessage": _contacts_array,
    "buttonsResponseMessage": _buttons_response,
    "listResponseMessage": _list_response,
    "interactiveResponseMessage": _interactive_response,
    "templateButtonReplyMessage": _template_button_reply,
    "reactionMessage": _reaction,
    "templateMessage": _template,
}


def _context(inner: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    for found in (inner.get("contextInfo"), item.get("contextInfo")):
        if isinstance(found, dict) and found:
            return found
    return {}


def _context_payload(context: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if context.get("isForwarded"):
        payload["forwarded"] = True
        score = context.get("forwardingScore")
        if isinstance(score, int | float) and score >= 5:
            payload["frequently_forwarded"] = True
    if context.get("stanzaId"):
        quoted = context.get("quotedMessage")
        payload["quoted"] = {
            "key_id": context["stanzaId"],
            "participant": context.get("participant"),
            "text": _plain_text(quoted) if isinstance(quoted, dict) else None,
        }
    ad = context.get("externalAdReply")
    if isinstance(ad, dict) and ad:
        payload["referral"] = _referral(ad)
    return payload


def _referral(ad: dict[str, Any]) -> dict[str, Any]:
    referral = {ours: ad.get(theirs) for theirs, ours in _REFERRAL_KEYS.items()}
    media_type = ad.get("mediaType")
    kind = _AD_MEDIA_TYPES.get(media_type) if isinstance(media_type, int | str) else None
    referral["media_type"] = kind
    referral["image_url"] = ad.get("originalImageUrl") if kind == "image" else None
    referral["video_url"] = ad.get("mediaUrl") if kind == "video" else None
    return referral


def _plain_text(message: dict[str, Any]) -> str | None:
    name, inner = _content_part(_unwrap(message))
    if name in ("conversation", "extendedTextMessage"):
        return inner.get("text")
    return inner.get("caption") or None


def _revoked(
    key: dict[str, Any], protocol: dict[str, Any], item: dict[str, Any], env: _Envelope
) -> StatusUpdate:
    target = _part(protocol, "key")
    return StatusUpdate(
        key_id=target.get("id") or key["id"],
        remote_jid=_identity(key, item).remote_jid,
        status="deleted",
        provider="evolution",
        instance=env.instance,
        from_me=bool(target.get("fromMe", key.get("fromMe"))),
        participant=key.get("participant"),
        timestamp=_timestamp(item.get("messageTimestamp")) or env.timestamp,
    )


def _update_events(item: dict[str, Any], env: _Envelope, where: str) -> list[EvolutionEvent]:
    key = _part(item, "key")
    update = _part(item, "update")
    key_id = item.get("keyId") or key.get("id")
    remote = item.get("remoteJid") or key.get("remoteJid")
    if not isinstance(key_id, str) or not key_id:
        raise MalformedPayload(f"{where}: missing 'keyId'")
    if not isinstance(remote, str) or not remote:
        raise MalformedPayload(f"{where}: missing 'remoteJid'")
    status = _status(item.get("status", update.get("status")))
    if status is None:
        return []
    from_me = item.get("fromMe", key.get("fromMe"))
    participant = item.get("participant") or key.get("participant")
    return [
        StatusUpdate(
            key_id=key_id,
            remote_jid=normalize_jid(remote),
            status=status,
            provider="evolution",
            instance=env.instance,
            from_me=bool(from_me),
            participant=normalize_jid(participant) if isinstance(participant, str) else None,
            timestamp=env.timestamp,
            error={"message": "ERROR ack from WhatsApp"} if status == "failed" else None,
        )
    ]


def _status(raw: Any) -> DeliveryStatus | None:
    if isinstance(raw, str):
        return _STATUSES.get(raw.upper())
    return _STATUSES.get(raw) if isinstance(raw, int) else None


def _delete_events(item: dict[str, Any], env: _Envelope, where: str) -> list[EvolutionEvent]:
    key = _part(item, "key") or item
    flat = {"keyId": key.get("id"), "remoteJid": key.get("remoteJid"), "status": "DELETED"}
    flat.update({"fromMe": key.get("fromMe"), "participant": key.get("participant")})
    return _update_events(flat, env, where)


def _connection_events(item: dict[str, Any], env: _Envelope, where: str) -> list[EvolutionEvent]:
    state = item.get("state")
    if not isinstance(state, str) or not state:
        raise MalformedPayload(f"{where}: missing 'state'")
    instance = item.get("instance")
    reason = item.get("statusReason")
    wuid = item.get("wuid")
    return [
        ConnectionUpdate(
            state=state,
            provider="evolution",
            instance=instance if isinstance(instance, str) else env.instance,
            status_reason=reason if isinstance(reason, int) else None,
            wuid=wuid if isinstance(wuid, str) else None,
            timestamp=env.timestamp,
        )
    ]


_EVENT_HANDLERS: dict[str, Callable[[dict[str, Any], _Envelope, str], list[EvolutionEvent]]] = {
    MESSAGES_UPSERT: _message_events,
    SEND_MESSAGE: _message_events,
    MESSAGES_UPDATE: _update_events,
    MESSAGES_DELETE: _delete_events,
    CONNECTION_UPDATE: _connection_events,
}


# --- outbound -------------------------------------------------------------------------------


def to_number(to: str) -> str:
    """Evolution's ``number``: digits for a user, the JID itself for groups and ``@lid``."""
    jid = normalize_jid(to) if "@" in to else to
    if "@" in jid and not is_user_jid(jid):
        return jid
    found = e164(split_jid(jid)[0])
    if found is None:
        raise ValueError(f"cannot address an Evolution message to {to!r}")
    return found[1:]


def build_send_request(msg: OutboundMessage) -> tuple[str, dict[str, Any]]:
    """(endpoint action, JSON body) for ``POST /message/<action>/<instance>``."""
    action, payload = _action(msg)
    payload = {"number": to_number(msg.to), **payload}
    if msg.reply_to_key_id:
        payload["quoted"] = {"key": {"id": msg.reply_to_key_id}}
    return action, payload


def _action(msg: OutboundMessage) -> tuple[str, dict[str, Any]]:
    if msg.type in ("text", "interactive"):  # Baileys numbers lost buttons: numbered text
        return "sendText", {"text": msg.text}
    if msg.type == "media" and msg.media is not None:
        media = msg.media
        source = media.content or media.url  # Evolution takes a URL or the file in base64
        if media.kind == "sticker":
            return "sendSticker", {"sticker": source}
        payload: dict[str, Any] = {"mediatype": media.kind, "media": source}
        if media.mime_type:
            payload["mimetype"] = media.mime_type
        if media.caption:
            payload["caption"] = media.caption
        if media.kind == "document":
            payload["fileName"] = media.filename or _file_name(media.url or "")
        return "sendMedia", payload
    if msg.type == "template" and msg.template is not None:
        template = msg.template
        return "sendTemplate", {
            "name": template.name,
            "language": template.language,
            "components": template.resolved_components(),
        }
    raise ValueError(f"cannot build an Evolution {msg.type!r} message")


def _file_name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1] or "document"


# how long Evolution shows "typing…": it answers the presence call only after this (Baileys sends
# ``composing``, waits, then ``paused``), so it stays well inside the provider timeout
TYPING_MS = 3_000


class EvolutionClient(ProviderClient):
    provider = "evolution"

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        instance_name: str,
        api_key: str,
        *,
        timeout: float | None = None,
    ) -> None:
        super().__init__(base_url, http, timeout=timeout)
        self._instance_name = instance_name
        self._api_key = api_key

    async def send(self, msg: OutboundMessage) -> SendResult:
        action, payload = build_send_request(msg)
        path = f"message/{action}/{quote(self._instance_name, safe='')}"
        body = await self._post(path, payload, {"apikey": self._api_key})
        key = body.get("key") if isinstance(body, dict) else None
        if not isinstance(key, dict) or not key.get("id"):
            raise self._missing_id(body)
        return SendResult(provider_message_id=str(key["id"]), raw=body)

    async def mark_read(self, key_id: str, remote_jid: str) -> None:
        """Evolution's ``POST /chat/markMessageAsRead/{instance}`` (blue ticks; Baileys reads
        by message key, so the chat's JID goes with the id), then ``/chat/sendPresence`` with
        ``composing`` (the typing indicator, a second call: Baileys has no combined one)."""
        instance = quote(self._instance_name, safe="")
        headers = {"apikey": self._api_key}
        message = {"remoteJid": remote_jid, "fromMe": False, "id": key_id}
        await self._post(f"chat/markMessageAsRead/{instance}", {"readMessages": [message]}, headers)
        presence = {"number": remote_jid, "presence": "composing", "delay": TYPING_MS}
        await self._post(f"chat/sendPresence/{instance}", presence, headers)

    def _describe_error(self, body: Any) -> tuple[str | None, str | int | None]:
        if not isinstance(body, dict):
            return (body if isinstance(body, str) and body else None), None
        response = body.get("response")
        message = response.get("message") if isinstance(response, dict) else None
        message = message if message is not None else body.get("message") or body.get("error")
        return _flatten_message(message), None


def _flatten_message(message: Any) -> str | None:
    if isinstance(message, list):
        parts = [_flatten_message(part) for part in message]
        return "; ".join(part for part in parts if part) or None
    if isinstance(message, dict):
        if message.get("exists") is False:
            return f"not on WhatsApp: {message.get('number') or message.get('jid')}"
        return ", ".join(f"{k}={v}" for k, v in message.items())
    return str(message) if message not in (None, "") else None
