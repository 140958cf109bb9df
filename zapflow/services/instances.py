"""WhatsApp instances: the numbers a company connects, and the webhook lookup by URL token."""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import SessionFactory
from zapflow.errors import Conflict, NotFound, Unprocessable
from zapflow.models import WhatsAppInstance, WhatsAppProvider
from zapflow.whatsapp.types import WebhookEvent

WEBHOOK_CACHE_SECONDS = 10.0
# unknown tokens are cached too (a flood of them costs no queries), so the cache is bounded
WEBHOOK_CACHE_ENTRIES = 10_000


def validate_provider_fields(provider: WhatsAppProvider, fields: dict[str, Any]) -> None:
    required = (
        ("phone_number_id", "access_token", "app_secret")
        if provider == WhatsAppProvider.CLOUD
        else ("evolution_instance", "api_key")
    )
    missing = [name for name in required if not fields.get(name)]
    if missing:
        raise Unprocessable(
            f"a {provider.value} instance needs {', '.join(missing)}", details={"missing": missing}
        )


async def create_instance(
    session: AsyncSession, company_id: uuid.UUID, fields: dict[str, Any]
) -> WhatsAppInstance:
    provider = WhatsAppProvider(fields["provider"])
    validate_provider_fields(provider, fields)
    instance = WhatsAppInstance(
        company_id=company_id,
        verify_token=fields.pop("verify_token", None) or secrets.token_urlsafe(24),
        webhook_secret=secrets.token_urlsafe(24),
        **fields,
    )
    session.add(instance)
    await _flush_unique(session, provider)
    return instance


async def _flush_unique(session: AsyncSession, provider: WhatsAppProvider) -> None:
    from sqlalchemy.exc import IntegrityError

    try:
        await session.flush()
    except IntegrityError:
        number = "phone_number_id" if provider == WhatsAppProvider.CLOUD else "evolution_instance"
        raise Conflict(f"another instance of this company already uses this {number}") from None


async def list_instances(session: AsyncSession, company_id: uuid.UUID) -> list[WhatsAppInstance]:
    query = (
        select(WhatsAppInstance)
        .where(col(WhatsAppInstance.company_id) == company_id)
        .order_by(col(WhatsAppInstance.created_at))
    )
    return list((await session.execute(query)).scalars())


async def get_instance(
    session: AsyncSession, company_id: uuid.UUID, instance_id: uuid.UUID
) -> WhatsAppInstance:
    instance = await session.get(WhatsAppInstance, instance_id)
    if instance is None or instance.company_id != company_id:
        raise NotFound("instance not found")
    return instance


async def update_instance(
    session: AsyncSession, instance: WhatsAppInstance, changes: dict[str, Any]
) -> WhatsAppInstance:
    for name, value in changes.items():
        setattr(instance, name, value)
    validate_provider_fields(instance.provider, instance.model_dump())
    await _flush_unique(session, instance.provider)
    return instance


class WebhookInstances:
    """Finds the instance a webhook URL token names; cached briefly (the webhook's hot path)."""

    def __init__(
        self, ttl: float = WEBHOOK_CACHE_SECONDS, max_entries: int = WEBHOOK_CACHE_ENTRIES
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, WhatsAppInstance | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def forget(self) -> None:
        self._cache.clear()

    async def find(
        self, sessions: SessionFactory, provider: WhatsAppProvider, token: str
    ) -> WhatsAppInstance:
        """The instance, from memory while cached (no session opened then)."""
        cached = self._cache.get(token)
        if cached and cached[0] > time.monotonic():
            instance = cached[1]
        else:
            query = select(WhatsAppInstance).where(col(WhatsAppInstance.webhook_secret) == token)
            async with sessions() as session:
                instance = (await session.execute(query)).scalar_one_or_none()
            self._cache[token] = (time.monotonic() + self._ttl, instance)
            if len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        if instance is None or instance.provider != provider:
            raise NotFound("no instance has this webhook URL")
        return instance


Routed = list[tuple[WhatsAppInstance, Sequence[WebhookEvent]]]


def posted_to_only(posted_to: WhatsAppInstance, events: Sequence[WebhookEvent]) -> bool:
    """Whether every event of a delivery is the instance's it was posted to (as nearly always):
    then ``route_events`` needs no query, and a caller no session for it."""
    own = (None, posted_to.phone_number_id)
    return posted_to.provider != WhatsAppProvider.CLOUD or all(e.instance in own for e in events)


async def route_events(
    session: AsyncSession, posted_to: WhatsAppInstance, events: Sequence[WebhookEvent]
) -> tuple[Routed, list[WebhookEvent]]:
    """Which instance each event of a delivery belongs to, and the events none of them owns.

    An Evolution URL serves one instance. A Cloud API delivery is split by the number each event
    names (``metadata.phone_number_id``): one Meta app has one webhook URL for every number it
    serves, so a delivery posted to one instance's URL may carry another number's events. Only
    numbers of the same company whose app secret signed the delivery are taken.
    """
    if posted_to_only(posted_to, events):
        return [(posted_to, events)], []
    by_number: dict[str | None, list[WebhookEvent]] = defaultdict(list)
    for event in events:
        by_number[event.instance or posted_to.phone_number_id].append(event)
    targets = {posted_to.phone_number_id: posted_to}
    others = [n for n in by_number if n not in targets]
    if others:
        query = select(WhatsAppInstance).where(
            col(WhatsAppInstance.company_id) == posted_to.company_id,
            col(WhatsAppInstance.provider) == WhatsAppProvider.CLOUD,
            col(WhatsAppInstance.app_secret) == posted_to.app_secret,
            col(WhatsAppInstance.phone_number_id).in_(others),
        )
        targets.update({i.phone_number_id: i for i in (await session.execute(query)).scalars()})
    routed: Routed = [(targets[n], group) for n, group in by_number.items() if n in targets]
    unroutable = [e for n, group in by_number.items() if n not in targets for e in group]
    return routed, unroutable
