"""The FastAPI application: lifespan-built clients, error handlers, metrics and routes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from zapflow import web
from zapflow.api import sse, webhooks
from zapflow.api.errors import install_error_handlers
from zapflow.api.metrics import guarded_metrics, refresh_backlog_gauges, watch_event_loop
from zapflow.api.middleware import ApiMiddleware
from zapflow.api.routes import (
    api_keys,
    campaign_audiences,
    campaigns,
    canned_responses,
    companies,
    contact_merge,
    contacts,
    conversations,
    deals,
    flows,
    followups,
    funnels,
    health,
    instances,
    me,
    media_files,
    messages,
    notes,
    oidc,
    ops,
    opt_outs,
    reports,
    search,
    sign_in,
    tags,
    teams,
    templates,
    users,
)
from zapflow.api.state import AppState
from zapflow.config import Settings, get_settings
from zapflow.logs import configure_logging

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState.build(settings)
        await state.open()
        app.state.zapflow = state
        # what start-up built (routes, models, compiled statements) lives as long as the process:
        # out of the collector's generations, its full passes do not walk it again and again
        gc.freeze()
        background = [
            asyncio.create_task(refresh_backlog_gauges(state.sessions)),
            asyncio.create_task(state.cache.listen()),
            asyncio.create_task(
                watch_event_loop(settings.event_loop_lag_warning_ms, settings.memory_warning_mb)
            ),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await state.close()

    app = FastAPI(
        title="zapflow",
        version="0.1.0",
        description="WhatsApp CRM automation: webhooks, conversations, funnels, flows and search.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry, unused here: off, it no longer asks the global providers
        # (reading os.environ) on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(ApiMiddleware, slow_request_ms=settings.slow_request_ms)
    app.add_route("/metrics", guarded_metrics(settings.metrics_token), include_in_schema=False)
    # FastAPI matches a request against the included routers in turn, route by route (no
    # check of an inclusion's prefix first): the busiest ones (webhooks, the inbox, contacts,
    # the board) come first. No route shadows another either way (tests/test_lean_routes.py).
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(sign_in.router)
    app.include_router(oidc.router)
    app.include_router(media_files.signed_router)
    routers = (
        conversations.router, messages.router, contact_merge.router, contacts.router,
        funnels.router, deals.router,
        companies.router, users.router, api_keys.router, instances.router,
        notes.router, tags.router, followups.router, ops.router, sse.router, me.router,
        teams.router, canned_responses.router, templates.router, campaigns.router,
        campaign_audiences.router, opt_outs.router, reports.router, media_files.router,
    )  # fmt: skip
    for router in (*routers, search.router, flows.router, flows.runs_router):
        app.include_router(router, prefix=API_PREFIX)
    web.mount(app)
    return app


def create_served_app() -> FastAPI:
    """The app as ``zapflow api`` serves it. Its uvicorn workers are spawned processes that
    inherit no logging set-up, so each configures its own here."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)
