"""Bench-only webhook without the inbox, for the pipeline scenario's comparison: it verifies and
normalizes a Cloud API delivery like the real webhook, then signal-with-starts each
conversation's workflow itself before answering, through the relay's own signal code. So the
two variants differ only by the inbox between the webhook and Temporal. Not a production path.

    python -m zapflow.bench.direct PORT COMPANY_ID INSTANCE_ID APP_SECRET
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.common import MetricMeter

from zapflow.activities.conversations import ConversationActivities
from zapflow.bench.api_floor import serve
from zapflow.cache import Cache
from zapflow.config import load_settings
from zapflow.db import create_engine, session_factory
from zapflow.redis import create_redis
from zapflow.temporal import connect
from zapflow.whatsapp import cloud
from zapflow.whatsapp.errors import MalformedPayload
from zapflow.whatsapp.types import InboundMessage
from zapflow.worker.metrics import WorkerMetrics
from zapflow.worker.relay import ConversationWork, InboxRelay
from zapflow.workflows.inputs import ConversationRef


def create_app(company_id: str, instance_id: str, app_secret: str) -> Starlette:
    relay: list[InboxRelay] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        settings = load_settings()
        engine = create_engine(settings, pool_size=1)  # the relay's constructor wants it
        temporal = await connect(settings)
        metrics = WorkerMetrics(MetricMeter.noop)
        sessions = session_factory(engine)
        # messages given whole are never stored by the relay: its persister goes unused
        persister = ConversationActivities(sessions, Cache(create_redis(settings)), metrics)
        relay.append(InboxRelay(settings, sessions, temporal, metrics, persister))
        yield
        await engine.dispose()

    async def webhook(request: Request) -> JSONResponse:
        raw = await request.body()
        received = time.time()
        if not cloud.verify_signature(raw, request.headers.get("x-hub-signature-256"), app_secret):
            return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
        try:
            events = cloud.parse_webhook(await request.json())
        except MalformedPayload as exc:
            return JSONResponse({"error": {"code": "malformed_payload", "message": str(exc)}}, 400)
        work: dict[str, ConversationWork] = {}
        for event in events:
            if isinstance(event, InboundMessage):
                ref = ConversationRef(company_id, instance_id, event.remote_jid)
                item = work.setdefault(ref.workflow_id, ConversationWork(ref))
                item.inbound.append(event)
                item.received_at[event.key_id] = received
        signalled = await asyncio.gather(*(relay[0]._signal(item) for item in work.values()))
        if not all(signalled):
            return JSONResponse({"error": {"code": "temporal_unavailable"}}, status_code=503)
        return JSONResponse({"signalled": len(work)})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ready": bool(relay)}, status_code=200 if relay else 503)

    routes = [Route("/webhooks/cloud/{token}", webhook, methods=["POST"]), Route("/readyz", ready)]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str]) -> None:
    port, company_id, instance_id, app_secret = argv
    serve(create_app(company_id, instance_id, app_secret), int(port))


if __name__ == "__main__":
    main(sys.argv[1:])
