"""Request metrics with starlette-prometheus's collectors, labelled by route template.

starlette-prometheus 0.10 finds a request's template by walking ``app.routes`` before the call;
FastAPI's included routers no longer appear there as flat routes, so its middleware fails. This
pure ASGI middleware reads the template FastAPI matched, after routing, and feeds the same
collectors, so ``/metrics`` (starlette-prometheus's endpoint) keeps its documented names.
Requests no route handled are not counted: raw paths would make unbounded label sets.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_prometheus.middleware import (
    EXCEPTIONS,
    REQUESTS,
    REQUESTS_PROCESSING_TIME,
    RESPONSES,
)


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
