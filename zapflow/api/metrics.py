"""Request metrics with starlette-prometheus's collectors, labelled by route template.

starlette-prometheus 0.10 finds a request's template by walking ``app.routes`` before the call;
FastAPI's included routers no longer appear there as flat routes, so its middleware fails.
``RouteMetrics``, called by ``api/middleware.py`` after the route ran, reads the template FastAPI
matched and feeds the same collectors, so ``/metrics`` keeps starlette-prometheus's names.
Requests no route handled are not counted: raw paths would make unbounded label sets.

``/metrics`` is not public: it answers only a scraper presenting ``ZAPFLOW_METRICS_TOKEN`` as a
bearer token (and is absent while no token is set), since route names, tenants' traffic and the
process's health are an operator's business.

Also the inbox backlog gauges, refreshed in the background while the API runs, and the
event-loop lag and memory checks the seed asks for.

With several API processes (``zapflow api --workers N``) the collectors live in
prometheus_client's multiprocess mode: each process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``, whichever process answers, adds them all up.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope
from starlette_prometheus.middleware import (
    EXCEPTIONS,
    REQUESTS,
    REQUESTS_PROCESSING_TIME,
    RESPONSES,
)

from zapflow.db import SessionFactory
from zapflow.errors import NotFound, Unauthorized
from zapflow.services.inbox import inbox_backlog

log = logging.getLogger(__name__)


def guarded_metrics(token: str | None) -> Callable[[Request], Awaitable[Response]]:
    """The ``/metrics`` exposition behind the operator's bearer token."""
    expected = f"Bearer {token}".encode()

    async def endpoint(request: Request) -> Response:
        if token is None:
            raise NotFound("not found")
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthorized("/metrics needs the ZAPFLOW_METRICS_TOKEN bearer token")
        return exposition()

    return endpoint


def route_template(scope: Scope) -> str | None:
    context: Any = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if template is None:
        template = getattr(scope.get("route"), "path_format", None)
    return template


class RouteMetrics:
    """Feeds the collectors for ``api/middleware.py``. A route's children of the collectors are
    looked up once (``labels()`` takes a lock and validates the labels on every call)."""

    def __init__(self, slow_request_ms: int = 500) -> None:
        self.slow_seconds = slow_request_ms / 1000
        self.children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def failed(self, scope: Scope, exc: BaseException) -> None:
        template = route_template(scope)
        if template:
            EXCEPTIONS.labels(scope["method"], template, type(exc).__name__).inc()

    def answered(self, scope: Scope, status: int, elapsed: float) -> None:
        template = route_template(scope)
        if not template:
            return
        method = scope["method"]
        key = (method, template, status)
        children = self.children.get(key)
        if children is None:
            children = (
                REQUESTS.labels(method, template),
                RESPONSES.labels(method, template, status),
                REQUESTS_PROCESSING_TIME.labels(method, template),
            )
            if len(self.children) < MAX_CACHED_CHILDREN:
                self.children[key] = children
        requests, responses, processing_time = children
        requests.inc()
        responses.inc()
        processing_time.observe(elapsed)
        if elapsed > self.slow_seconds and not template.endswith("/stream"):
            log.warning(
                "slow request",
                extra={
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )


# routes, methods and statuses; a method no route has (405) would otherwise grow the dict
MAX_CACHED_CHILDREN = 2048
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_metrics() -> None:
    """Before several API processes start: a fresh directory for their metric files (the
    operator's, emptied, when ``PROMETHEUS_MULTIPROC_DIR`` names one), inherited by them."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    if not directory:
        os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="zapflow-metrics-")
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):  # a previous run's processes
        stale.unlink()


def exposition() -> Response:
    """The Prometheus exposition: this process's collectors, or every API process's."""
    registry = REGISTRY
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# the same value seen by every process: the latest one counts
INBOX_PENDING = Gauge(
    "zapflow_inbox_pending", "Inbox rows waiting for the relay", multiprocess_mode="mostrecent"
)
INBOX_OLDEST_AGE = Gauge(
    "zapflow_inbox_oldest_pending_age_seconds",
    "Age of the oldest inbox row waiting for the relay",
    multiprocess_mode="mostrecent",
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


EVENT_LOOP_LAG = Gauge(
    "zapflow_event_loop_lag_seconds",
    "How late the event loop runs a timer (the worst API process's)",
    multiprocess_mode="max",
)
LAG_PROBE_SECONDS = 0.5
MEMORY_CHECK_EVERY = 60  # probes: the RSS itself is exported by prometheus_client's collector


async def watch_event_loop(lag_warning_ms: int, memory_warning_mb: int) -> None:
    """Measure event-loop lag continuously; warn on lag and on high memory (the seed's checks)."""
    process = psutil.Process()
    loop = asyncio.get_running_loop()
    probes = 0
    while True:
        expected = loop.time() + LAG_PROBE_SECONDS
        await asyncio.sleep(LAG_PROBE_SECONDS)
        lag = max(0.0, loop.time() - expected)
        EVENT_LOOP_LAG.set(lag)
        if lag * 1000 > lag_warning_ms:
            log.warning("event loop lag", extra={"lag_ms": round(lag * 1000, 1)})
        probes += 1
        if probes % MEMORY_CHECK_EVERY == 0:
            rss_mb = process.memory_info().rss / 2**20
            if rss_mb > memory_warning_mb:
                log.warning("high memory use", extra={"rss_mb": round(rss_mb)})
