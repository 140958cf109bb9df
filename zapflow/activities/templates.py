"""The scheduled template sync: each Cloud API number's templates from the Graph API, stored as
``POST /templates/sync`` stores them (services/templates.py). A number the Graph API refuses
(a revoked token, an unknown account) is logged and skipped, never failing the others."""

from __future__ import annotations

import asyncio
import logging

import httpx
from temporalio import activity

from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.errors import Unprocessable
from zapflow.models import WhatsAppInstance
from zapflow.services import templates
from zapflow.whatsapp.cloud_templates import CloudTemplates
from zapflow.whatsapp.errors import ProviderError

log = logging.getLogger(__name__)

# Numbers synced at once: a platform's hundreds of numbers take minutes, not an hour, and Meta
# sees a handful of requests at a time.
SYNC_CONCURRENCY = 8


class TemplateActivities:
    def __init__(self, sessions: SessionFactory, http: httpx.AsyncClient, settings: Settings):
        self._sessions = sessions
        self._http = http
        self._settings = settings

    @activity.defn
    async def sync_all(self) -> int:
        """Sync every Cloud number's templates; how many numbers were synced."""
        async with self._sessions() as session:
            numbers = await templates.cloud_numbers(session)
        limit = asyncio.Semaphore(SYNC_CONCURRENCY)

        async def sync(instance: WhatsAppInstance) -> bool:
            async with limit:
                activity.heartbeat(str(instance.id))
                try:
                    account = templates.account_of(instance)
                    graph = CloudTemplates(
                        self._settings.cloud_api_base_url,
                        self._http,
                        account,
                        instance.access_token or "",
                    )
                    items = await graph.list_all()
                except (ProviderError, Unprocessable) as exc:
                    log.warning("template sync skipped", extra={"instance_id": str(instance.id),
                                                                "error": str(exc)})  # fmt: skip
                    return False
                async with transaction(self._sessions) as session:
                    await templates.store_synced(session, instance, items)
                return True

        return sum(await asyncio.gather(*(sync(instance) for instance in numbers)))
