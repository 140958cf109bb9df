"""Provider-shaped deliveries, built the way WhatsApp sends them: for `zapflow simulate-inbound`
(try the pipeline without a phone), the tests and the benchmarks."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any


def cloud_signature(raw_body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` header Meta sends with a delivery."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def cloud_text(
    wa_id: str, key_id: str, text: str, ts: int | None = None, name: str = "Maria"
) -> dict[str, Any]:
    """One change's ``value`` fields for a text message from ``wa_id``."""
    message = {
        "from": wa_id,
        "id": key_id,
        "timestamp": str(ts if ts is not None else int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    return {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [message]}


def cloud_delivery(phone_number_id: str, *changes: dict[str, Any]) -> dict[str, Any]:
    """One delivery: each change becomes its own entry (a delivery can batch several)."""
    metadata = {"display_phone_number": "15550001111", "phone_number_id": phone_number_id}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA_ID",
                "changes": [
                    {
                        "field": "messages",
                        "value": {"messaging_product": "whatsapp", "metadata": metadata, **change},
                    }
                ],
            }
            for change in changes
        ],
    }


def cloud_statuses(phone_number_id: str, *statuses: tuple[str, str, str, int]) -> dict[str, Any]:
    """statuses: (provider message id, status, recipient wa_id, timestamp)."""
    return cloud_delivery(
        phone_number_id,
        {
            "statuses": [
                {"id": key, "status": status, "timestamp": str(ts), "recipient_id": to}
                for key, status, to, ts in statuses
            ]
        },
    )


def evolution_text(
    instance: str, api_key: str, phone_digits: str, key_id: str, text: str, name: str = "Maria"
) -> dict[str, Any]:
    """An Evolution API v2 ``messages.upsert`` delivery for a text from ``phone_digits``."""
    return {
        "event": "messages.upsert",
        "instance": instance,
        "apikey": api_key,
        "data": {
            "key": {"remoteJid": f"{phone_digits}@s.whatsapp.net", "fromMe": False, "id": key_id},
            "pushName": name,
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": int(time.time()),
        },
    }
