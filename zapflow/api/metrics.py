"""Request metrics with starlette-prometheus's collectors, labelled by route template.

starlette-prometheus 0.10 finds a request's template by walking ``app.routes`` before the call;
FastAPI's included routers no longer appear there as flat routes, so its middleware fails. This
pure ASGI middleware reads the template FastAPI matched, after routing, and feeds the same
collectors, so ``/metrics`` (starlette-prometheus's endpoint) keeps its documented names.
Requests no route handled are not counted: raw paths would make unbounded label sets.

Also the inbox backlog gauges, refreshed in the background while the API runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_prometheus.middleware import (
    EXCEPTIONS,
    REQUESTS,
    REQUESTS_PROCESSING_TIME,
    RESPONSES,
)

from zapflow.db import SessionFactory
from zapflow.services.inbox import inbox_backlog

log = logging.getLogger(__name__)


def route_template(scope: Scope) -> str | None:
    context: Any = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if template is None:
        template = getattr(scope.get("route"), "path_format", None)
    return template


class RouteMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"]
        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:
            template = route_template(scope)
            if template:
                EXCEPTIONS.labels(method, template, type(exc).__name__).inc()
            raise
        finally:
            template = route_template(scope)
            if template:
                REQUESTS.labels(method, template).inc()
                RESPONSES.labels(method, template, status).inc()
                REQUESTS_PROCESSING_TIME.labels(method, template).observe(
                    time.perf_counter() - started
                )


INBOX_PENDING = Gauge("zapflow_inbox_pending", "Inbox rows waiting for the relay")
INBOX_OLDEST_AGE = Gauge(
    "zapflow_inbox_oldest_pending_age_seconds", "Age of the oldest inbox row waiting for the relay"
)
BACKLOG_REFRESH_SECONDS = 5.0


async def refresh_backlog_gauges(sessions: SessionFactory) -> None:
    """Keep the inbox backlog gauges current (a count over the relay's partial index)."""
    while True:
        try:
            backlog = await inbox_backlog(sessions)
        except Exception as exc:  # the database being down must not end the loop
            log.debug("backlog refresh failed: %s", exc)
        else:
            INBOX_PENDING.set(backlog.pending)
            INBOX_OLDEST_AGE.set(backlog.oldest_age_seconds)
        await asyncio.sleep(BACKLOG_REFRESH_SECONDS)
