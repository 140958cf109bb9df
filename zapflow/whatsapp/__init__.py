"""Provider adapters: WhatsApp Cloud API (``cloud``) and Evolution API v2 (``evolution``).

Each provider module verifies a webhook's authenticity, normalizes its body into the model of
``zapflow.whatsapp.types`` and sends ``OutboundMessage``s; ``client_for`` picks the sender.
"""

from __future__ import annotations

import httpx

from zapflow.config import Settings
from zapflow.whatsapp.base import ProviderClient
from zapflow.whatsapp.cloud import CloudApiClient
from zapflow.whatsapp.errors import MalformedPayload, ProviderError
from zapflow.whatsapp.evolution import EvolutionClient
from zapflow.whatsapp.types import (
    ConnectionUpdate,
    InboundMessage,
    OutboundMedia,
    OutboundMessage,
    OutboundTemplate,
    SendResult,
    StatusUpdate,
    WebhookEvent,
    dedupe_key,
    event_from_dict,
    event_to_dict,
)

__all__ = [
    "CloudApiClient",
    "ConnectionUpdate",
    "EvolutionClient",
    "InboundMessage",
    "MalformedPayload",
    "OutboundMedia",
    "OutboundMessage",
    "OutboundTemplate",
    "ProviderClient",
    "ProviderError",
    "SendResult",
    "StatusUpdate",
    "WebhookEvent",
    "client_for",
    "dedupe_key",
    "event_from_dict",
    "event_to_dict",
    "provider_http_client",
]


def provider_http_client(settings: Settings) -> httpx.AsyncClient:
    """One pooled client per process for all provider calls, with the configured timeout."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.provider_timeout_seconds),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


def client_for(
    provider: str,
    *,
    settings: Settings,
    http: httpx.AsyncClient,
    phone_number_id: str | None = None,
    access_token: str | None = None,
    instance_name: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
) -> ProviderClient:
    """The sender for one WhatsApp instance: Cloud API needs ``phone_number_id`` and
    ``access_token``; Evolution needs ``instance_name`` and ``api_key``. ``base_url`` overrides
    the setting (an Evolution server per company, say)."""
    if provider == "cloud":
        if not phone_number_id or not access_token:
            raise ValueError("a cloud instance needs phone_number_id and access_token")
        url = base_url or settings.cloud_api_base_url
        return CloudApiClient(url, http, phone_number_id, access_token)
    if provider == "evolution":
        if not instance_name or not api_key:
            raise ValueError("an evolution instance needs instance_name and api_key")
        url = base_url or settings.evolution_base_url
        return EvolutionClient(url, http, instance_name, api_key)
    raise ValueError(f"unknown WhatsApp provider {provider!r}")
