"""WhatsApp Cloud API (Meta): webhook authenticity, webhook normalization, outbound sends.

One delivery may batch several entries, changes, messages and statuses; every message becomes an
``InboundMessage`` (unknown types as ``unsupported`` with the raw object, never dropped).
``smb_message_echoes`` are messages the business sent from the WhatsApp Business app (kept as
``from_me``); template status and quality changes become ``TemplateUpdate``, a user's marketing
preference (``user_preferences``) a ``PreferenceUpdate``; other changes are skipped.
Business-scoped user ids (``from_user_id`` / ``user_id`` / ``recipient_user_id``) and usernames are
kept as aliases; a user without a phone in the payload is keyed ``<bsuid>@bsuid``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from zapflow.whatsapp.base import ProviderClient
from zapflow.whatsapp.errors import MalformedPayload
from zapflow.whatsapp.interactive import cloud_interactive
from zapflow.whatsapp.jid import e164, is_bsuid, jid_from_bsuid, jid_from_phone, split_jid
from zapflow.whatsapp.types import (
    MEDIA_TYPES,
    DeliveryStatus,
    InboundMessage,
    MessageType,
    OutboundMessage,
    PreferenceUpdate,
    SendResult,
    StatusUpdate,
    TemplateUpdate,
    epoch,
    media_dict,
    text_or_none,
)

CloudEvent = InboundMessage | StatusUpdate | TemplateUpdate | PreferenceUpdate
Content = tuple[MessageType, str | None, dict[str, Any] | None, dict[str, Any]]

SIGNATURE_PREFIX = "sha256="
_STATUSES: dict[str, DeliveryStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "deleted": "deleted",
}
# Meta error codes that mean "later": throttling, pair rate limit, temporary service errors.
RETRYABLE_ERROR_CODES = frozenset(
    {1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131056, 131057, 133004}
)
_REFERRAL_KEYS = (
    "source_url",
    "source_id",
    "source_type",
    "headline",
    "body",
    "media_type",
    "image_url",
    "video_url",
    "thumbnail_url",
    "ctwa_clid",
)


# --- authenticity ---------------------------------------------------------------------------


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>``."""
    if not header or not app_secret or not header.startswith(SIGNATURE_PREFIX):
        return False
    given = header[len(SIGNATURE_PREFIX) :].strip().lower()
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.encode("ascii", "replace"))


def verify_handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The ``hub.challenge`` to echo when ``hub.mode=subscribe`` and the token matches."""
    token = params.get("hub.verify_token") or ""
    challenge = params.get("hub.challenge")
    if params.get("hub.mode") != "subscribe" or not verify_token or challenge is None:
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return challenge


# --- inbound --------------------------------------------------------------------------------


def parse_webhook(body: Any) -> list[CloudEvent]:
    events: list[CloudEvent] = []
    for i, entry in enumerate(_entries(body)):
        where = f"entry[{i}]"
        if not isinstance(entry, dict):
            raise MalformedPayload(f"{where} must be an object")
        changes = entry.get("changes", [])
        if not isinstance(changes, list):
            raise MalformedPayload(f"{where}.changes must be a list")
        for j, change in enumerate(changes):
            account = text_or_none(entry.get("id"))
            events.extend(_parse_change(change, f"{where}.changes[{j}]", account))
    return events


def _entries(body: Any) -> list[Any]:
    if not isinstance(body, dict):
        raise MalformedPayload(f"body must be a JSON object, got {type(body).__name__}")
    if body.get("object") != "whatsapp_business_account":
        raise MalformedPayload(
            f"'object' must be 'whatsapp_business_account', got {body.get('object')!r}"
        )
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise MalformedPayload("'entry' must be a list")
    return entries


def _parse_change(change: Any, where: str, account: str | None = None) -> list[CloudEvent]:
    if not isinstance(change, dict):
        raise MalformedPayload(f"{where} must be an object")
    value = change.get("value")
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}.value must be an object")
    instance = _instance(value)
    field = change.get("field")
    if field == "messages":
        contacts = _list(value, "contacts", where)
        events: list[CloudEvent] = [
            _message(m, contacts, instance, f"{where}.value.messages[{k}]", from_me=False)
            for k, m in enumerate(_list(value, "messages", where))
        ]
        statuses = enumerate(_list(value, "statuses", where))
        found = (_status(s, instance, f"{where}.value.statuses[{k}]") for k, s in statuses)
        return events + [status for status in found if status is not None]
    if field in _TEMPLATE_FIELDS:
        return [_template_update(value, field, account, where)]
    if field == "user_preferences":
        contacts = _list(value, "contacts", where)
        preferences = enumerate(_list(value, "user_preferences", where))
        return [
            _preference(p, contacts, instance, f"{where}.value.user_preferences[{k}]")
            for k, p in preferences
        ]
    if field == "smb_message_echoes":
        echoes = enumerate(_list(value, "message_echoes", where))
        return [
            _message(m, [], instance, f"{where}.value.message_echoes[{k}]", from_me=True)
            for k, m in echoes
        ]
    return []


def _preference(p: Any, contacts: list[Any], instance: str | None, where: str) -> PreferenceUpdate:
    """Meta's ``user_preferences`` entry: ``wa_id`` (a phone; absent for a username user) and,
    since BSUIDs, ``user_id``; ``category`` and ``value`` are required."""
    if not isinstance(p, dict):
        raise MalformedPayload(f"{where} must be an object")
    wa_id, user_id = p.get("wa_id"), text_or_none(p.get("user_id"))
    contact = _find_contact(contacts, wa_id, user_id)
    user_id = user_id or text_or_none(contact.get("user_id"))
    phone = e164(wa_id) if isinstance(wa_id, str) and not is_bsuid(wa_id) else None
    if phone is None and user_id is None:
        raise MalformedPayload(f"{where}: names no user (wa_id or user_id)")
    category, value = p.get("category"), p.get("value")
    if not isinstance(category, str) or not isinstance(value, str):
        raise MalformedPayload(f"{where}: 'category' and 'value' must be strings")
    profile = _part(contact, "profile")
    return PreferenceUpdate(
        category=category,
        value=value,
        provider="cloud",
        instance=instance,
        phone=phone,
        user_id=user_id,
        name=text_or_none(profile.get("name")),
        detail=text_or_none(p.get("detail")),
        timestamp=epoch(p.get("timestamp")),
    )


_TEMPLATE_FIELDS = ("message_template_status_update", "message_template_quality_update")


def _template_update(
    value: dict[str, Any], field: str, account: str | None, where: str
) -> TemplateUpdate:
    template_id = value.get("message_template_id")
    if template_id is None or isinstance(template_id, (dict, list, bool)):
        raise MalformedPayload(f"{where}.value: missing 'message_template_id'")
    quality = field == "message_template_quality_update"
    return TemplateUpdate(
        template_id=str(template_id),
        provider="cloud",
        account_id=account,
        name=text_or_none(value.get("message_template_name")),
        language=text_or_none(value.get("message_template_language")),
        status=None if quality else text_or_none(value.get("event")),
        reason=None if quality else _template_reason(value),
        quality=text_or_none(value.get("new_quality_score")) if quality else None,
    )


def _template_reason(value: dict[str, Any]) -> str | None:
    reason = text_or_none(value.get("reason"))
    other = _part(value, "other_info")
    described = text_or_none(other.get("description")) or text_or_none(other.get("title"))
    if reason in (None, "NONE"):
        return described
    return f"{reason}: {described}" if described else reason


def _instance(value: dict[str, Any]) -> str | None:
    metadata = value.get("metadata")
    found = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return str(found) if found is not None else None


def _list(value: dict[str, Any], name: str, where: str) -> list[Any]:
    found = value.get(name) or []
    if not isinstance(found, list):
        raise MalformedPayload(f"{where}.value.{name} must be a list")
    return found


def _message(
    m: Any, contacts: list[Any], instance: str | None, where: str, *, from_me: bool
) -> InboundMessage:
    if not isinstance(m, dict):
        raise MalformedPayload(f"{where} must be an object")
    key_id = m.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise MalformedPayload(f"{where}: missing 'id'")
    peer = _peer(m, contacts, where, from_me=from_me)
    kind, body, media, payload = _content(m)
    payload.update(_context_payload(m))
    context = m.get("context")
    return InboundMessage(
        key_id=key_id,
        remote_jid=peer["remote_jid"],
        from_me=from_me,
        type=kind,
        provider="cloud",
        instance=instance,
        phone=peer["phone"],
        user_id=peer["user_id"],
        username=peer["username"],
        push_name=None if from_me else peer["name"],
        body=body,
        media=media,
        payload=payload,
        reply_to_key_id=context.get("id") if isinstance(context, dict) else None,
        timestamp=epoch(m.get("timestamp")),
    )


def _peer(m: dict[str, Any], contacts: list[Any], where: str, *, from_me: bool) -> dict[str, Any]:
    wa_id = text_or_none(m.get("to") if from_me else m.get("from"))
    user_id = text_or_none(m.get("to_user_id") if from_me else m.get("from_user_id"))
    contact = _find_contact(contacts, wa_id, user_id)
    profile = _part(contact, "profile")
    phone = e164(wa_id or text_or_none(contact.get("wa_id")))
    system = _part(m, "system")  # a BSUID change may name no sender but the previous id
    user_id = (
        user_id
        or text_or_none(contact.get("user_id"))
        or text_or_none(system.get("previous_user_id"))
        or text_or_none(system.get("user_id"))
    )
    if phone:
        remote_jid = jid_from_phone(phone)
    elif user_id:
        remote_jid = jid_from_bsuid(user_id)
    else:
        raise MalformedPayload(f"{where}: missing '{'to' if from_me else 'from'}'")
    return {
        "remote_jid": remote_jid,
        "phone": phone,
        "user_id": user_id,
        "username": profile.get("username") or contact.get("username"),
        "name": profile.get("name"),
    }


def _find_contact(contacts: list[Any], wa_id: Any, user_id: Any) -> dict[str, Any]:
    candidates = [c for c in contacts if isinstance(c, dict)]
    for contact in candidates:
        if (wa_id and contact.get("wa_id") == wa_id) or (
            user_id and contact.get("user_id") == user_id
        ):
            return contact
    return candidates[0] if len(candidates) == 1 else {}


def _content(m: dict[str, Any]) -> Content:
    kind = text_or_none(m.get("type"))
    if kind in MEDIA_TYPES:
        return _media(m, kind)
    handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        return _unsupported(m)
    return handler(m)


def _unsupported(m: dict[str, Any]) -> Content:
    return "unsupported", None, None, {"raw": m, "original_type": m.get("type")}


def _part(m: dict[str, Any], name: str) -> dict[str, Any]:
    found = m.get(name)
    return found if isinstance(found, dict) else {}


def _text(m: dict[str, Any]) -> Content:
    return "text", _part(m, "text").get("body"), None, {}


def _media(m: dict[str, Any], kind: Any) -> Content:
    part = _part(m, kind)
    media = media_dict(
        id=part.get("id"),
        url=part.get("url") or part.get("link"),
        mime_type=part.get("mime_type"),
        caption=part.get("caption"),
        filename=part.get("filename"),
        voice=bool(part.get("voice")),
        sha256=part.get("sha256"),
    )
    payload = {"animated": True} if part.get("animated") else {}
    return kind, part.get("caption"), media, payload


def _location(m: dict[str, Any]) -> Content:
    part = _part(m, "location")
    keys = ("latitude", "longitude", "name", "address", "url")
    return "location", None, None, {key: part.get(key) for key in keys}


def _contacts(m: dict[str, Any]) -> Content:
    cards = [c for c in _items(m.get("contacts")) if isinstance(c, dict)]
    payload: dict[str, Any] = {"contacts": [_contact_card(card) for card in cards]}
    if text_or_none(m.get("origin")):
        payload["origin"] = m["origin"]  # contact_request: the user shared their own number
    return "contacts", None, None, payload


def _contact_card(card: dict[str, Any]) -> dict[str, Any]:
    name = _part(card, "name")
    phones = [p for p in _items(card.get("phones")) if isinstance(p, dict)]
    emails = [e.get("email") for e in _items(card.get("emails")) if isinstance(e, dict)]
    return {
        "name": name.get("formatted_name") or name.get("first_name"),
        "phones": [{"phone": e164(p.get("phone")), "wa_id": p.get("wa_id")} for p in phones],
        "emails": [email for email in emails if email],
        "vcard": None,
        "card": card,
    }


def _interactive(m: dict[str, Any]) -> Content:
    part = _part(m, "interactive")
    reply_type = part.get("type")
    reply = _part(part, reply_type) if isinstance(reply_type, str) else {}
    if reply_type in ("button_reply", "list_reply"):
        payload = {
            "interactive_type": reply_type,
            "id": reply.get("id"),
            "title": reply.get("title"),
            "description": reply.get("description"),
        }
        return "interactive", reply.get("title"), None, payload
    if reply_type == "nfm_reply":
        payload = {
            "interactive_type": reply_type,
            "name": reply.get("name"),
            "response": _json_or_raw(reply.get("response_json")),
        }
        return "interactive", reply.get("body"), None, payload
    return "interactive", None, None, {"interactive_type": reply_type, "raw": part}


def _json_or_raw(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _button(m: dict[str, Any]) -> Content:
    part = _part(m, "button")
    text = part.get("text")
    return "button", text, None, {"payload": part.get("payload"), "text": text}


def _system(m: dict[str, Any]) -> Content:
    """Meta's notice of a user's changed number (``user_changed_number``: the new ``wa_id``)
    or BSUID (``user_changed_user_id``); both name the new ``user_id`` and the previous one."""
    part = _part(m, "system")
    kind = text_or_none(part.get("type"))
    payload: dict[str, Any] = {"system_type": kind}
    if kind in ("user_changed_number", "user_changed_user_id"):
        payload["identity_change"] = {
            "phone": e164(part.get("wa_id")) if kind == "user_changed_number" else None,
            "user_id": text_or_none(part.get("user_id")),
            "previous_user_id": text_or_none(part.get("previous_user_id")),
        }
    return "system", text_or_none(part.get("body")), None, payload


def _reaction(m: dict[str, Any]) -> Content:
    part = _part(m, "reaction")
    payload = {"emoji": part.get("emoji") or None, "target_key_id": part.get("message_id")}
    return "reaction", None, None, payload


def _template(m: dict[str, Any]) -> Content:
    part = _part(m, "template")
    return "template", None, None, {"name": part.get("name"), "raw": part}


_HANDLERS: dict[str, Callable[[dict[str, Any]], Content]] = {
    "text": _text,
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
    "template": _template,
    "system": _system,
}


def _context_payload(m: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    context = _part(m, "context")
    for flag in ("forwarded", "frequently_forwarded"):
        if context.get(flag):
            payload[flag] = True
    if context.get("referred_product"):
        payload["referred_product"] = context["referred_product"]
    referral = _part(m, "referral")
    if referral:
        payload["referral"] = {key: referral.get(key) for key in _REFERRAL_KEYS}
    return payload


def _status(s: Any, instance: str | None, where: str) -> StatusUpdate | None:
    if not isinstance(s, dict):
        raise MalformedPayload(f"{where} must be an object")
    key_id = s.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise MalformedPayload(f"{where}: missing 'id'")
    status = _STATUSES.get(text_or_none(s.get("status")) or "")
    if status is None:
        return None
    phone = e164(s.get("recipient_id"))
    user_id = text_or_none(s.get("recipient_user_id"))
    if phone:
        remote_jid = jid_from_phone(phone)
    elif user_id:
        remote_jid = jid_from_bsuid(user_id)
    else:
        raise MalformedPayload(f"{where}: missing 'recipient_id'")
    return StatusUpdate(
        key_id=key_id,
        remote_jid=remote_jid,
        status=status,
        provider="cloud",
        instance=instance,
        user_id=user_id,
        timestamp=epoch(s.get("timestamp")),
        error=_status_error(s.get("errors")),
        callback_data=s.get("biz_opaque_callback_data"),
    )


def _status_error(errors: Any) -> dict[str, Any] | None:
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    data = _part(first, "error_data")
    return {
        "code": first.get("code"),
        "title": first.get("title"),
        "message": first.get("message") or first.get("title"),
        "details": data.get("details"),
    }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- outbound -------------------------------------------------------------------------------


def build_send_payload(msg: OutboundMessage) -> dict[str, Any]:
    """The ``POST /{phone_number_id}/messages`` body for ``msg``."""
    payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    payload.update(_recipient(msg.to))
    payload.update(_body(msg))
    if msg.reply_to_key_id:
        payload["context"] = {"message_id": msg.reply_to_key_id}
    if msg.idempotency_key:
        payload["biz_opaque_callback_data"] = msg.idempotency_key[:512]
    return payload


def _recipient(to: str) -> dict[str, str]:
    if is_bsuid(to):
        return {"recipient": split_jid(to)[0]}
    phone = e164(split_jid(to)[0])
    if phone is None:
        raise ValueError(f"cannot address a Cloud API message to {to!r}")
    return {"to": phone[1:]}


def _body(msg: OutboundMessage) -> dict[str, Any]:
    if msg.type == "text":
        return {"type": "text", "text": {"body": msg.text, "preview_url": False}}
    if msg.type == "media" and msg.media is not None:
        media: dict[str, Any] = {"link": msg.media.url}
        if msg.media.caption and msg.media.kind in ("image", "video", "document"):
            media["caption"] = msg.media.caption
        if msg.media.filename and msg.media.kind == "document":
            media["filename"] = msg.media.filename
        return {"type": msg.media.kind, msg.media.kind: media}
    if msg.type == "template" and msg.template is not None:
        template = {
            "name": msg.template.name,
            "language": {"code": msg.template.language},
            "components": msg.template.resolved_components(),
        }
        return {"type": "template", "template": template}
    if msg.type == "interactive" and msg.interactive is not None:
        return {"type": "interactive", "interactive": cloud_interactive(msg.interactive)}
    raise ValueError(f"cannot build a Cloud API {msg.type!r} message")


class CloudApiClient(ProviderClient):
    provider = "cloud"

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        phone_number_id: str,
        access_token: str,
        *,
        timeout: float | None = None,
    ) -> None:
        super().__init__(base_url, http, timeout=timeout)
        self._phone_number_id = phone_number_id
        self._access_token = access_token

    async def send(self, msg: OutboundMessage) -> SendResult:
        headers = {"Authorization": f"Bearer {self._access_token}"}
        path = f"{self._phone_number_id}/messages"
        body = await self._post(path, build_send_payload(msg), headers)
        messages = body.get("messages") if isinstance(body, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        if not isinstance(first, dict) or not first.get("id"):
            raise self._missing_id(body)
        return SendResult(provider_message_id=str(first["id"]), raw=body)

    async def mark_read(self, key_id: str, remote_jid: str) -> None:
        """Mark the customer's message (and those before it) read and show the typing
        indicator: one call, Meta's "typing indicators" (dismissed by our reply or after 25 s).
        The message id names the chat: ``remote_jid`` is not needed."""
        headers = {"Authorization": f"Bearer {self._access_token}"}
        payload = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": key_id,
            "typing_indicator": {"type": "text"},
        }
        await self._post(f"{self._phone_number_id}/messages", payload, headers)

    def _describe_error(self, body: Any) -> tuple[str | None, str | int | None]:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return (body if isinstance(body, str) and body else None), None
        data = _part(error, "error_data")
        message = error.get("message") or error.get("error_user_msg")
        details = data.get("details")
        if message and details and details not in message:
            message = f"{message}: {details}"
        return message, error.get("code")

    def _retryable_code(self, code: str | int | None) -> bool:
        return _int(code) in RETRYABLE_ERROR_CODES
