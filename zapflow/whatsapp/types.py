"""The provider-neutral model of what WhatsApp sends us and what we send back.

Everything here is a frozen ``@dataclass`` of primitives, dicts, lists and nested dataclasses, so
Temporal's default data converter carries it as an activity or signal input unchanged, and
``event_to_dict`` / ``event_from_dict`` give the JSON kept in the inbox.

Identity of an ``InboundMessage``: ``remote_jid`` is the chat (a user JID, an ``@lid`` JID when
no phone is known, a group JID, or ``<bsuid>@bsuid``). ``phone``, ``lid``, ``user_id`` and
``username`` are the aliases of the contact the message belongs to: the other party of a 1:1
chat (also on our own messages) or the sender (``participant``) in a group. ``push_name`` is the
contact's profile name and is None on our own (``from_me``) messages.

``media`` always has the keys of ``media_dict``; its ``id`` is the handle to download the file
with (Cloud API media id; Evolution message key id, for ``getBase64FromMediaMessage``).

``payload`` by type: location ``latitude, longitude, name, address, url`` (+ ``live``);
contacts ``contacts: [{name, phones: [{phone, wa_id}], emails, vcard, card}]``; interactive
``interactive_type, id, title, description`` (``response`` for ``nfm_reply``); button
``payload, text``; reaction ``emoji`` (None when removed), ``target_key_id``; template ``name``;
sticker ``animated``; system ``system_type`` and, for a changed number or BSUID,
``identity_change`` (``phone``, ``user_id``, ``previous_user_id``); contacts ``origin``
(``contact_request``: the user shared their own number); audio ``transcript`` (Evolution
speech-to-text); unsupported ``raw, original_type``. Any type may carry ``referral``
(click-to-WhatsApp ad: ``source_url, source_id, source_type, headline, body, media_type,
image_url, video_url, thumbnail_url, ctwa_clid``), ``forwarded``/``frequently_forwarded``
and ``quoted`` (``key_id, participant, text``; Evolution) and ``referred_product`` (Cloud API).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

from zapflow.whatsapp.errors import MalformedPayload

Provider = Literal["cloud", "evolution"]
MessageType = Literal[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "template",
    "system",
    "unsupported",
]
DeliveryStatus = Literal["sent", "delivered", "read", "failed", "deleted"]
MediaKind = Literal["image", "audio", "video", "document", "sticker"]
OutboundType = Literal["text", "media", "template", "interactive"]

MEDIA_TYPES: frozenset[str] = frozenset({"image", "audio", "video", "document", "sticker"})
MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime holds


def epoch(value: Any) -> int | None:
    """Seconds since 1970 from a number or a numeric string, if a datetime can hold them (a
    timestamp that cannot be stored would stop its conversation's pipeline)."""
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if 0 <= seconds <= MAX_EPOCH else None


def text_or_none(value: Any) -> str | None:
    """``value`` when it is a string: a provider field of another type (a bug, a forged body)
    must not reach a text column or a string method."""
    return value if isinstance(value, str) else None


def media_dict(
    *,
    id: Any = None,
    url: Any = None,
    mime_type: Any = None,
    caption: Any = None,
    filename: Any = None,
    voice: Any = False,
    sha256: Any = None,
) -> dict[str, Any]:
    """The media of a message; what is not a string where a string is expected becomes None."""
    return {
        "id": text_or_none(id),
        "url": text_or_none(url),
        "mime_type": text_or_none(mime_type),
        "caption": text_or_none(caption),
        "filename": text_or_none(filename),
        "voice": bool(voice),
        "sha256": text_or_none(sha256),
    }


INT64 = range(-(2**63), 2**63)  # what a bigint column and every JSON library we use can hold


class _Typed:
    """Fields of another type than declared (a provider's bug, a forged body) are settled when
    the event is built, so that no column or string method ever gets a dict for a text: a
    required text is a ``MalformedPayload`` (the delivery is kept as rejected); an optional text,
    number or object becomes None (the event is kept); an integer must fit 64 bits."""

    kind: ClassVar[str]

    def __post_init__(self) -> None:
        for name, annotation in type(self).__annotations__.items():
            value = getattr(self, name, None)
            if annotation == "str" and type(value) is not str:
                raise MalformedPayload(f"{self.kind}.{name} must be a string")
            if value is None or annotation not in _OPTIONAL:
                continue
            if not _OPTIONAL[annotation](value):
                object.__setattr__(self, name, None)


_OPTIONAL: dict[str, Callable[[Any], bool]] = {
    "str | None": lambda v: type(v) is str,
    "int | None": lambda v: type(v) is int and v in INT64,
    "dict[str, Any] | None": lambda v: type(v) is dict,
}


@dataclass(frozen=True, kw_only=True)
class InboundMessage(_Typed):
    kind: ClassVar[str] = "message"

    key_id: str
    remote_jid: str
    from_me: bool
    type: MessageType
    provider: Provider
    instance: str | None = None
    participant: str | None = None
    phone: str | None = None
    lid: str | None = None
    user_id: str | None = None
    username: str | None = None
    push_name: str | None = None
    body: str | None = None
    media: dict[str, Any] | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    reply_to_key_id: str | None = None
    timestamp: int | None = None

    def answer(self) -> str:
        """What a flow reads from this message: the id of a tapped reply button or list row
        (a template's quick-reply payload), else the text."""
        if self.type == "interactive" and isinstance(self.payload.get("id"), str):
            return str(self.payload["id"])
        if self.type == "button" and isinstance(self.payload.get("payload"), str):
            return str(self.payload["payload"])
        return self.body or ""


@dataclass(frozen=True, kw_only=True)
class StatusUpdate(_Typed):
    """A delivery receipt for a message (``deleted`` when it was revoked). ``from_me`` tells
    receipts of our messages from the business reading a customer's message on its phone."""

    kind: ClassVar[str] = "status"

    key_id: str
    remote_jid: str
    status: DeliveryStatus
    provider: Provider
    instance: str | None = None
    from_me: bool = True
    participant: str | None = None
    user_id: str | None = None
    timestamp: int | None = None
    error: dict[str, Any] | None = None
    callback_data: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConnectionUpdate(_Typed):
    kind: ClassVar[str] = "connection"

    state: str
    provider: Provider
    instance: str | None = None
    status_reason: int | None = None
    wuid: str | None = None
    timestamp: int | None = None


@dataclass(frozen=True, kw_only=True)
class TemplateUpdate(_Typed):
    """A Cloud API message template's new status (``message_template_status_update``: its
    ``event`` and ``reason``) or quality (``message_template_quality_update``)."""

    kind: ClassVar[str] = "template"

    template_id: str
    provider: Provider
    account_id: str | None = None  # the WhatsApp Business Account (the entry's id)
    name: str | None = None
    language: str | None = None
    status: str | None = None
    reason: str | None = None
    quality: str | None = None
    instance: str | None = None  # none: the template belongs to the account, not a number


@dataclass(frozen=True, kw_only=True)
class PreferenceUpdate(_Typed):
    """A WhatsApp user stopped (``stop``) or resumed (``resume``) a category of the business's
    messages (Cloud API ``user_preferences``; the category Meta sends is
    ``marketing_messages``). The user is named by phone (``wa_id``) and/or BSUID (``user_id``)."""

    kind: ClassVar[str] = "preference"

    category: str
    value: str
    provider: Provider
    instance: str | None = None
    phone: str | None = None
    user_id: str | None = None
    name: str | None = None
    detail: str | None = None
    timestamp: int | None = None


WebhookEvent = InboundMessage | StatusUpdate | ConnectionUpdate | TemplateUpdate | PreferenceUpdate
_EventClass = type[InboundMessage] | type[StatusUpdate] | type[ConnectionUpdate]

_EVENT_CLASSES: dict[str, _EventClass | type[TemplateUpdate] | type[PreferenceUpdate]] = {
    cls.kind: cls
    for cls in (InboundMessage, StatusUpdate, ConnectionUpdate, TemplateUpdate, PreferenceUpdate)
}


def dedupe_key(event: WebhookEvent) -> str:
    """``msg:<key_id>``, ``status:<key_id>:<status>``, else a hash of the event."""
    if isinstance(event, InboundMessage):
        return f"msg:{event.key_id}"
    if isinstance(event, StatusUpdate):
        return f"status:{event.key_id}:{event.status}"
    digest = hashlib.sha256(orjson.dumps(event_to_dict(event), option=orjson.OPT_SORT_KEYS))
    return f"{event.kind}:{digest.hexdigest()[:32]}"


def event_to_dict(event: WebhookEvent) -> dict[str, Any]:
    """The event's fields (its nested dicts shared, not copied: ``asdict``'s deep copy was half
    of the webhook's parse-to-row time), for JSON."""
    return {"kind": event.kind, **vars(event)}


def event_from_dict(data: dict[str, Any]) -> WebhookEvent:
    fields = dict(data)
    cls = _EVENT_CLASSES.get(fields.pop("kind", None) or "")
    if cls is None:
        raise ValueError(f"unknown event kind {data.get('kind')!r}")
    return cls(**fields)


@dataclass(frozen=True, kw_only=True)
class OutboundMedia:
    """By ``url``, or ``media_id``: an uploaded file, for which the send fills in a signed
    ``url`` (Cloud API) or the ``content`` (Evolution)."""

    url: str | None = None
    media_id: str | None = None
    kind: MediaKind
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None
    content: str | None = None  # the file as base64, when zapflow downloaded it (Evolution)


@dataclass(frozen=True, kw_only=True)
class OutboundTemplate:
    """``components`` in the Cloud API shape; ``params`` is a shortcut for body text parameters."""

    name: str
    language: str
    components: list[dict[str, Any]] | None = None
    params: list[str] | None = None

    def resolved_components(self) -> list[dict[str, Any]]:
        if self.components is not None:
            return self.components
        if not self.params:
            return []
        parameters = [{"type": "text", "text": value} for value in self.params]
        return [{"type": "body", "parameters": parameters}]


@dataclass(frozen=True, kw_only=True)
class OutboundMessage:
    """``to`` is a phone (``+5511...``/digits), a JID, or a Cloud API BSUID. An
    ``interactive`` message (``zapflow.whatsapp.interactive``) carries its numbered ``text``
    for the providers that cannot show buttons."""

    type: OutboundType
    to: str
    text: str | None = None
    media: OutboundMedia | None = None
    template: OutboundTemplate | None = None
    interactive: dict[str, Any] | None = None
    reply_to_key_id: str | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if not self.to:
            raise ValueError("outbound message needs a recipient")
        if self.type == "text" and not self.text:
            raise ValueError("text message needs text")
        if self.type == "media" and self.media is None:
            raise ValueError("media message needs media")
        if self.type == "template" and self.template is None:
            raise ValueError("template message needs a template")
        if self.type == "interactive" and (self.interactive is None or not self.text):
            raise ValueError("interactive message needs its content and its text")


@dataclass(frozen=True, kw_only=True)
class SendResult:
    provider_message_id: str
    raw: dict[str, Any]
