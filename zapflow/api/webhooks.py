"""Provider webhooks: authenticate, normalize, store in the inbox, commit, then answer.

The answer waits only for one INSERT: Temporal is reached later by the relay. Bad credentials get
401 and nothing is stored; an authenticated body we cannot read is kept as a rejected row and gets
400; a database outage gets 503 so that the provider retries.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import Histogram
from pydantic import BaseModel

from zapflow.api.deps import state_of
from zapflow.api.lean import LeanRoute
from zapflow.api.ratelimit import refuse
from zapflow.api.state import AppState
from zapflow.errors import (
    Forbidden,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    ZapflowError,
)
from zapflow.logs import CORRELATION_ID
from zapflow.models import WhatsAppInstance, WhatsAppProvider
from zapflow.services import inbox, instances, ratelimit
from zapflow.whatsapp import cloud, evolution
from zapflow.whatsapp.errors import MalformedPayload
from zapflow.whatsapp.types import WebhookEvent

WEBHOOK_ACK = Histogram(
    "zapflow_webhook_ack_seconds",
    "Webhook handling time until the answer, by provider",
    ["provider"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


_ACK_BY_PROVIDER = {provider: WEBHOOK_ACK.labels(provider.value) for provider in WhatsAppProvider}


@contextmanager
def _timed_ack(provider: WhatsAppProvider) -> Iterator[None]:
    """Times a delivery's handling until its answer (not the handshake's). In the route, not
    a router dependency: FastAPI solves a generator dependency through an exit stack on every
    request."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _ACK_BY_PROVIDER[provider].observe(time.perf_counter() - started)


# no dependencies: the state is the app's (``state_of``), read with no dependency to solve
router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=LeanRoute)


WEBHOOKS = "webhooks"  # the route group of deliveries in the rate limiter
# Providers nest about 8 levels; a deeper body could be stored but not serialized back out.
MAX_DEPTH = 64


class WebhookAck(BaseModel):
    stored: int
    duplicates: int


class MalformedDelivery(ZapflowError):
    status_code = 400
    code = "malformed_payload"


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdecimal() and int(declared) > limit:
        raise PayloadTooLarge(f"body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
    return bytes(body)


def correlation_id() -> str:
    return CORRELATION_ID.get() or uuid.uuid4().hex


async def _find_instance(
    state: AppState, provider: WhatsAppProvider, token: str
) -> WhatsAppInstance:
    """The instance the URL names, once its delivery is counted in the instance's and its
    company's buckets: a flood at one URL is refused with 429 before its body is read, so it
    costs a cached lookup and one Redis round trip per request, not the API's time for other
    tenants (providers retry a 429)."""
    instance = await state.webhook_instances.find(state.sessions, provider, token)
    buckets = (
        ratelimit.Bucket(
            "instance", f"instance:{instance.id}", state.settings.webhook_rate_limit_per_minute
        ),
        ratelimit.Bucket(
            "company",
            f"company:{instance.company_id}",
            state.settings.webhook_company_rate_limit_per_minute,
        ),
    )
    outcome = await ratelimit.hit(state.redis, WEBHOOKS, buckets)
    if outcome is not None and not outcome.allowed:
        raise refuse(outcome, WEBHOOKS)
    return instance


# what a lost or refused connection raises: the provider retries the delivery on a 503
DATABASE_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # shutting down, starting up
    asyncpg.InterfaceError,
)


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"


async def _store(
    state: AppState, instance: WhatsAppInstance, events: Sequence[WebhookEvent]
) -> JSONResponse:
    routed: instances.Routed = [(instance, events)]
    unroutable: list[WebhookEvent] = []
    if not instances.posted_to_only(instance, events):  # another number's: look its instance up
        async with state.sessions() as session:
            routed, unroutable = await instances.route_events(session, instance, events)
    batches = [inbox.Batch(target, group) for target, group in routed]
    if unroutable:
        numbers = ", ".join(sorted({str(e.instance) for e in unroutable}))
        reason = f"no instance of this company has phone_number_id {numbers}"
        batches.append(inbox.Batch(instance, unroutable, reason))
    try:
        async with state.driver_pool.acquire() as connection:
            accepted = await inbox.insert_delivery(connection, batches, correlation_id())
    except DATABASE_DOWN as exc:
        raise DatabaseUnavailable("the database is unavailable, retry later") from exc
    return JSONResponse({"stored": accepted.stored, "duplicates": accepted.duplicates})


async def _reject(
    state: AppState, instance: WhatsAppInstance, raw: bytes, error: str
) -> MalformedDelivery:
    async with state.sessions() as session, session.begin():
        await inbox.store_rejected(session, instance, raw, error, correlation_id())
    return MalformedDelivery(error)


def without_nul(raw: bytes) -> bytes:
    """Postgres text and jsonb cannot hold U+0000: an escaped one becomes U+FFFD, and a NUL byte
    (never valid in JSON) is dropped, so such a delivery is stored instead of failing."""
    return raw.replace(b"\\u0000", b"\\ufffd").replace(b"\x00", b"")


def nested_deeper_than(value: Any, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _parse_json(raw: bytes) -> tuple[Any, str | None]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"body is not valid JSON: {exc}"
    # a body with fewer brackets than the limit cannot nest deeper (counted in C, unlike the walk)
    brackets = raw.count(b"{") + raw.count(b"[")
    if brackets > MAX_DEPTH and nested_deeper_than(body, MAX_DEPTH):
        return None, f"body is nested deeper than {MAX_DEPTH} levels"
    return body, None


@router.get(
    "/cloud/{token}",
    summary="WhatsApp Cloud API verification handshake",
    response_class=PlainTextResponse,
    responses={403: {"description": "wrong mode or verify token"}},
)
async def cloud_handshake(
    token: str,
    request: Request,
    mode: str | None = Query(None, alias="hub.mode"),
    verify_token: str | None = Query(None, alias="hub.verify_token"),
    challenge: str | None = Query(None, alias="hub.challenge"),
) -> PlainTextResponse:
    instance = await _find_instance(state_of(request), WhatsAppProvider.CLOUD, token)
    params = {
        "hub.mode": mode or "",
        "hub.verify_token": verify_token or "",
        "hub.challenge": challenge or "",
    }
    answer = cloud.verify_handshake(params, instance.verify_token)
    if answer is None:
        raise Forbidden("verification failed: wrong hub.mode or hub.verify_token")
    return PlainTextResponse(answer)


@router.post(
    "/cloud/{token}",
    summary="WhatsApp Cloud API webhook",
    response_model=WebhookAck,
    responses={400: {}, 401: {}, 413: {}, 503: {"description": "retry later"}},
)
async def cloud_webhook(token: str, request: Request) -> JSONResponse:
    with _timed_ack(WhatsAppProvider.CLOUD):
        return await _cloud(token, request, state_of(request))


async def _cloud(token: str, request: Request, state: AppState) -> JSONResponse:
    instance = await _find_instance(state, WhatsAppProvider.CLOUD, token)
    raw = await read_body(request, state.settings.webhook_max_bytes)
    signature = request.headers.get("x-hub-signature-256")
    if not instance.app_secret or not cloud.verify_signature(raw, signature, instance.app_secret):
        raise Unauthorized("missing or wrong X-Hub-Signature-256")
    raw = without_nul(raw)
    body, error = _parse_json(raw)
    if error is None:
        try:
            return await _store(state, instance, cloud.parse_webhook(body))
        except MalformedPayload as exc:
            error = str(exc)
    raise await _reject(state, instance, raw, error)


async def _evolution(
    token: str, request: Request, state: AppState, event: str | None
) -> JSONResponse:
    instance = await _find_instance(state, WhatsAppProvider.EVOLUTION, token)
    raw = without_nul(await read_body(request, state.settings.webhook_max_bytes))
    body, error = _parse_json(raw)
    jwt_key = evolution.instance_jwt_key(state.settings.evolution_jwt_key, instance.webhook_secret)
    if not evolution.authenticate(body, request.headers, instance.api_key, jwt_key):
        raise Unauthorized("missing or wrong apikey / Authorization bearer token")
    if error is None:
        try:
            return await _store(state, instance, evolution.parse_webhook(body, event=event))
        except MalformedPayload as exc:
            error = str(exc)
    raise await _reject(state, instance, raw, error)


@router.post(
    "/evolution/{token}",
    summary="Evolution API webhook",
    response_model=WebhookAck,
    responses={400: {}, 401: {}, 413: {}, 503: {"description": "retry later"}},
)
async def evolution_webhook(token: str, request: Request) -> JSONResponse:
    with _timed_ack(WhatsAppProvider.EVOLUTION):
        return await _evolution(token, request, state_of(request), None)


@router.post(
    "/evolution/{token}/{event_suffix}",
    summary="Evolution API webhook, 'webhook by events' variant",
    response_model=WebhookAck,
    responses={400: {}, 401: {}, 413: {}, 503: {"description": "retry later"}},
)
async def evolution_webhook_by_event(
    token: str, event_suffix: str, request: Request
) -> JSONResponse:
    event = evolution.event_from_url_suffix(event_suffix)
    with _timed_ack(WhatsAppProvider.EVOLUTION):
        return await _evolution(token, request, state_of(request), event)
