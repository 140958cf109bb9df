"""Security controls end to end (SECURITY.md lists which test proves which control): webhook
authentication for both providers, API keys hashed and revoked everywhere, secrets never in a
response or a log line, a company's stream never replaying another's events, request bodies
capped before they are read, and slow clients holding no database connection."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import orjson
import pytest
from sqlalchemy import text

from tests.fixtures.app import Tenant, in_process_api
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.tenancy import World, build_world
from tests.fixtures.traffic import (
    EventListener,
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    post_cloud,
    sign,
)
from tests.test_tenancy_matrix import OPERATIONS, PATH_OBJECTS, call
from zapflow.api.limits import MAX_BODY_BYTES
from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.devstack import free_port
from zapflow.errors import NotFound
from zapflow.models import WhatsAppProvider
from zapflow.services.instances import WebhookInstances
from zapflow.whatsapp.simulate import evolution_text

pytestmark = pytest.mark.usefixtures("worker")
JWT_KEY = "jwt-signing-key-of-32-bytes-or-more!"
UNRELATED_KEY = "an-unrelated-key-of-32-bytes-or-more"


async def _inbox_rows(sessions: SessionFactory, company_id: str) -> int:
    async with sessions() as session:
        found = await session.execute(
            text("SELECT count(*) FROM inbox_events WHERE company_id = :c"),
            {"c": uuid.UUID(company_id)},
        )
        return int(found.scalar_one())


# --- webhook authentication ---------------------------------------------------------------------


def _cloud_body(instance: dict[str, Any], text: str) -> bytes:
    message = cloud_text("5511977776666", f"wamid.{uuid.uuid4().hex}", text, int(time.time()))
    return orjson.dumps(cloud_delivery(instance["phone_number_id"], message))


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda raw, original: None, id="missing"),
        pytest.param(lambda raw, original: sign(raw, "another-secret"), id="wrong-secret"),
        pytest.param(lambda raw, original: sign(original), id="replayed-with-altered-body"),
        pytest.param(lambda raw, original: "sha1=" + sign(raw)[7:], id="wrong-scheme"),
        pytest.param(lambda raw, original: "sha256=" + "0" * 64, id="zeros"),
    ],
)
async def test_a_cloud_delivery_without_its_signature_is_refused_and_not_stored(
    tenant: Tenant, sessions: SessionFactory, forge: Any
) -> None:
    instance = await create_cloud_instance(tenant)
    original = _cloud_body(instance, "oi")
    accepted = await post_cloud(tenant.client, instance["webhook_url"], orjson.loads(original))
    assert accepted.status_code == 200  # a genuine delivery, captured by an attacker ...
    raw = original.replace(b'"oi"', b'"pague aqui: evil.example"')  # ... and altered
    headers = {"content-type": "application/json"}
    signature = forge(raw, original)
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    refused = await tenant.client.post(instance["webhook_url"], content=raw, headers=headers)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "unauthorized"
    assert await _inbox_rows(sessions, tenant.id) == 1  # only the genuine one


@pytest.fixture
async def jwt_api(settings: Settings, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """An API process that also accepts Evolution's HS256 JWT (ZAPFLOW_EVOLUTION_JWT_KEY)."""
    with_jwt = settings.model_copy(update={"evolution_jwt_key": JWT_KEY})
    async with in_process_api(with_jwt, tenant.api_key) as (_, client):
        yield client


def _bearer(key: str, expires_in: float | None, **claims: str) -> dict[str, str]:
    """A JWT made when the test runs (``exp`` counts from then; None: no ``exp``), as a header
    spec; ``key`` "instance" stands for the instance's own key, "other" for another instance's."""
    spec = {"jwt": key, **claims}
    return spec if expires_in is None else {**spec, "expires_in": str(expires_in)}


def _headers(spec: dict[str, str], keys: dict[str, str]) -> dict[str, str]:
    if "jwt" not in spec:
        return spec
    claims: dict[str, object] = {k: v for k, v in spec.items() if k not in ("jwt", "expires_in")}
    if "expires_in" in spec:
        claims["exp"] = int(time.time() + float(spec["expires_in"]))
    token = jwt.encode(claims, keys.get(spec["jwt"], spec["jwt"]), algorithm="HS256")
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("body_key", "headers", "status"),
    [
        pytest.param(None, {}, 401, id="missing"),
        pytest.param("wrong", {}, 401, id="wrong-in-body"),
        pytest.param(None, {"apikey": "wrong"}, 401, id="wrong-in-header"),
        pytest.param("", {"apikey": ""}, 401, id="empty"),
        pytest.param(None, _bearer(UNRELATED_KEY, 60), 401, id="jwt-of-another-key"),
        pytest.param(None, _bearer("instance", -120), 401, id="jwt-expired"),
        pytest.param(None, {"authorization": "Bearer not.a.jwt"}, 401, id="jwt-garbage"),
        pytest.param(None, _bearer("instance", None, app="evolution"), 401, id="jwt-without-exp"),
        pytest.param(None, _bearer("instance", 30 * 86400), 401, id="jwt-living-30-days"),
        pytest.param(None, _bearer(JWT_KEY, 60), 401, id="jwt-of-the-operator-key"),
        pytest.param(None, _bearer("other", 60), 401, id="jwt-of-another-instance"),
        pytest.param(None, _bearer("instance", 600), 200, id="jwt-good"),
        pytest.param("instance-key", {}, 200, id="key-good"),
    ],
)
async def test_an_evolution_delivery_needs_the_instance_key_or_a_valid_jwt(
    tenant: Tenant,
    jwt_api: httpx.AsyncClient,
    sessions: SessionFactory,
    body_key: str | None,
    headers: dict[str, str],
    status: int,
) -> None:
    """The JWT must expire, within the hour, and be signed with the instance's own key (the one
    the instance shows its admins), not the operator's key nor another instance's."""
    made = []
    for name in ("Evo", "Other Evo"):
        created = await jwt_api.post(
            "/api/v1/instances",
            json={
                "name": name,
                "provider": "evolution",
                "evolution_instance": "evo-" + uuid.uuid4().hex[:8],
                "api_key": "instance-key",
            },
        )
        made.append(created.json())
    instance, other = made
    keys = {"instance": instance["evolution_jwt_key"], "other": other["evolution_jwt_key"]}
    assert keys["instance"] and keys["other"] and keys["instance"] != keys["other"]
    body = evolution_text(
        instance["evolution_instance"], "", "5511966665555", uuid.uuid4().hex, "oi"
    )
    body.pop("apikey")
    if body_key is not None:
        body["apikey"] = body_key
    url = instance["webhook_url"].split("://", 1)[1].split("/", 1)[1]
    answer = await jwt_api.post(f"/{url}", json=body, headers=_headers(headers, keys))
    assert answer.status_code == status, answer.text
    assert await _inbox_rows(sessions, tenant.id) == (1 if status == 200 else 0)


# --- instances ---------------------------------------------------------------------------------


async def _messages_of(sessions: SessionFactory, company_id: str) -> list[str]:
    async with sessions() as session:
        found = await session.execute(
            text("SELECT body FROM messages WHERE company_id = :c ORDER BY body"),
            {"c": uuid.UUID(company_id)},
        )
        return [str(body) for body in found.scalars()]


async def test_a_number_one_company_connected_is_neither_revealed_nor_blocked_for_another(
    tenant: Tenant, other_tenant: Tenant, sessions: SessionFactory
) -> None:
    """Instances are unique per company: another company connecting the same phone_number_id
    (or Evolution instance name) gets no 409, and each company's webhook URL files the number's
    events under its own instance only."""
    number = "9" + uuid.uuid4().hex[:14]
    cloud = {"name": "Sales", "provider": "cloud", "phone_number_id": number,
             "access_token": "t"}  # fmt: skip
    evo = {"name": "Evo", "provider": "evolution", "api_key": "k",
           "evolution_instance": "evo-" + uuid.uuid4().hex[:8]}  # fmt: skip
    secrets = {tenant.id: "app-secret-of-a", other_tenant.id: "app-secret-of-b"}
    urls = {}
    for company in (tenant, other_tenant):
        created = await company.client.post(
            "/api/v1/instances", json={**cloud, "app_secret": secrets[company.id]}
        )
        assert created.status_code == 201, created.text
        urls[company.id] = created.json()["webhook_url"]
        assert (await company.client.post("/api/v1/instances", json=evo)).status_code == 201
    again = await tenant.client.post(
        "/api/v1/instances", json={**cloud, "app_secret": secrets[tenant.id]}
    )
    assert again.status_code == 409
    for company, words in ((tenant, "para a empresa A"), (other_tenant, "para a empresa B")):
        message = cloud_text("5511977776666", f"wamid.{uuid.uuid4().hex}", words, int(time.time()))
        raw = orjson.dumps(cloud_delivery(number, message))
        headers = {"content-type": "application/json",
                   "x-hub-signature-256": sign(raw, secrets[company.id])}  # fmt: skip
        answer = await company.client.post(urls[company.id], content=raw, headers=headers)
        assert answer.json() == {"stored": 1, "duplicates": 0}, answer.text
    await eventually(lambda: _messages_of(sessions, other_tenant.id), lambda rows: len(rows) == 1)
    await eventually(lambda: _messages_of(sessions, tenant.id), lambda rows: len(rows) == 1)
    assert await _messages_of(sessions, tenant.id) == ["para a empresa A"]
    assert await _messages_of(sessions, other_tenant.id) == ["para a empresa B"]


# --- API keys -----------------------------------------------------------------------------------


async def test_api_keys_are_kept_only_as_a_hash(tenant: Tenant, sessions: SessionFactory) -> None:
    created = (
        await tenant.client.post("/api/v1/api-keys", json={"name": "ci", "role": "agent"})
    ).json()
    plain = created["key"]
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT key_hash, to_jsonb(k)::text AS row FROM api_keys k WHERE id = :id"),
            {"id": uuid.UUID(created["id"])},
        )
        key_hash, row = rows.one()
    assert key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert plain not in row and plain.split("_", 2)[2] not in row  # the secret part nowhere


async def test_a_key_revoked_through_one_process_is_refused_by_another(
    tenant: Tenant, settings: Settings
) -> None:
    """Each API process caches keys; a revocation reaches every process's cache through Redis."""
    created = (
        await tenant.client.post("/api/v1/api-keys", json={"name": "ci", "role": "admin"})
    ).json()
    async with in_process_api(settings, created["key"]) as (_, elsewhere):
        assert (await elsewhere.get("/api/v1/company")).status_code == 200  # cached there now
        revoked = await tenant.client.delete(f"/api/v1/api-keys/{created['id']}")
        assert revoked.status_code == 204

        async def status() -> int:
            return (await elsewhere.get("/api/v1/company")).status_code

        await eventually(status, lambda code: code == 401, within=2)


async def _stream_lines(client: httpx.AsyncClient, opened: asyncio.Event) -> list[str]:
    """The company stream's lines until the server ends it."""
    lines = []
    async with client.stream("GET", "/api/v1/stream", timeout=None) as response:
        assert response.status_code == 200, await response.aread()
        opened.set()
        async for line in response.aiter_lines():
            lines.append(line)
    return lines


@pytest.mark.parametrize(
    "cut_off",
    [
        pytest.param(lambda key, user: ("DELETE", f"/api/v1/api-keys/{key}", None), id="revoked"),
        pytest.param(
            lambda key, user: ("DELETE", f"/api/v1/users/{user}", None), id="user deleted"
        ),
        pytest.param(
            lambda _, user: ("PATCH", f"/api/v1/users/{user}", {"is_active": False}),
            id="user deactivated",
        ),
    ],
)
async def test_an_open_stream_ends_when_its_key_stops_working(
    tenant: Tenant, api_url: str, cut_off: Any
) -> None:
    """The stream re-checks its key every few seconds: once the key is revoked (or its user
    deleted or deactivated) it gets a last `stream.closed` event and ends, instead of
    receiving the company's events until its hour is up. An event sent afterwards never
    reaches it."""
    user = (
        await tenant.client.post("/api/v1/users", json={"email": "sam@acme.com", "name": "Sam"})
    ).json()
    key = (
        await tenant.client.post(
            "/api/v1/api-keys", json={"name": "sam", "role": "agent", "user_id": user["id"]}
        )
    ).json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as agent:
        opened = asyncio.Event()
        stream = asyncio.create_task(_stream_lines(agent, opened))
        try:
            await asyncio.wait_for(opened.wait(), 10)
            method, path, body = cut_off(key["id"], user["id"])
            done = await tenant.client.request(method, path, json=body)
            assert done.status_code in (200, 204), done.text
            await create_cloud_instance(tenant)  # an event after the cut-off
            lines = await asyncio.wait_for(stream, 30)
        finally:
            stream.cancel()
        assert (await agent.get("/api/v1/stream")).status_code == 401
    data = [orjson.loads(line[5:]) for line in lines if line.startswith("data:")]
    assert data and data[-1]["type"] == "stream.closed", lines


async def test_without_redis_a_revoked_key_lives_at_most_the_cache_ttl_elsewhere(
    tenant: Tenant, settings: Settings
) -> None:
    """A revocation made by a process that cannot reach Redis reaches no other process's cache;
    they honour the key until what they cached expires: ``auth_cache_seconds`` (30 s by
    default, SECURITY.md) after they loaded it, both the process's own copy and the copy it
    takes from Redis (which holds the stale entry too, since its delete never arrived)."""
    ttl = 3
    created = (
        await tenant.client.post("/api/v1/api-keys", json={"name": "ci", "role": "agent"})
    ).json()
    admin = tenant.api_key
    cut_off = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    short = settings.model_copy(update={"auth_cache_seconds": ttl})
    async with (
        in_process_api(short, created["key"]) as (_, elsewhere),
        in_process_api(cut_off, admin) as (_, revoker),
    ):
        assert (await elsewhere.get("/api/v1/company")).status_code == 200  # cached there
        revoked = await revoker.delete(f"/api/v1/api-keys/{created['id']}")
        assert revoked.status_code == 204
        at = time.monotonic()
        while time.monotonic() < at + ttl:  # the key may still be honoured: Redis never knew
            assert (await elsewhere.get("/api/v1/company")).status_code in (200, 401)
            await asyncio.sleep(0.2)
        refused = await elsewhere.get("/api/v1/company")
        assert refused.status_code == 401, "honoured past the cache's TTL"


# --- secrets in responses and logs --------------------------------------------------------------


@pytest.fixture
async def world(
    api_url: str, sessions: SessionFactory, provider_server: ProviderServer
) -> AsyncIterator[World]:
    built = await build_world(api_url, sessions, provider_server, "s")
    yield built
    await built.client.aclose()


async def test_no_route_returns_a_secret(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """Every GET of the OpenAPI document, with the company's own objects in its path: no
    provider credential, API key or key hash in any answer (the webhook URL and the verify
    token are shown on purpose: the admin gives them to the provider). Nor in any log line."""
    caplog.set_level(logging.DEBUG)
    evolution = await world.client.post(
        "/api/v1/instances",
        json={
            "name": "Evo",
            "provider": "evolution",
            "evolution_instance": "evo-" + world.token,
            "api_key": f"evo-secret-{world.token}",
        },
    )
    assert evolution.status_code == 201
    instance = (await world.client.get(f"/api/v1/instances/{world.objects['instance']}")).json()
    shown = {instance["webhook_url"].rsplit("/", 1)[-1], instance["verify_token"]}
    keys = world.secrets - shown
    secrets = {
        "test-app-secret",  # the Cloud instance's app secret (tests/fixtures/traffic.py)
        "cloud-token",  # its access token
        f"evo-secret-{world.token}",
        *keys,
        *(hashlib.sha256(k.encode()).hexdigest() for k in keys),
    }
    await world.client.get("/api/v1/company", headers={"Authorization": "Bearer zf_wrong"})
    answers = 0
    for op in OPERATIONS:
        if op.method != "GET":
            continue
        values = {p: world.objects[PATH_OBJECTS[p]] for p in op.params("path")}
        answer = await call(world.client, "GET", op.url(values))
        answers += 1
        leaked = {s for s in secrets if s in answer.text}
        assert not leaked, f"GET {op.path} returns {leaked}"
    assert answers >= 30
    logged = "\n".join(
        f"{r.getMessage()} {r.__dict__.get('args')} {r.__dict__}" for r in caplog.records
    )
    assert not {s for s in secrets if s in logged}, "a secret was logged"


# --- live events --------------------------------------------------------------------------------


async def test_resuming_a_stream_from_its_start_replays_only_the_callers_events(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    """Last-Event-ID is a position in the caller's own stream: "0-0" (the very start) replays
    the caller's history, never another company's."""
    secret_text = f"segredo-{uuid.uuid4().hex}"
    instance = await create_cloud_instance(tenant)
    delivery = cloud_delivery(
        instance["phone_number_id"],
        cloud_text("5511955554444", f"wamid.{uuid.uuid4().hex}", secret_text, int(time.time())),
    )
    async with EventListener(tenant.client) as owner:
        assert (
            await post_cloud(tenant.client, instance["webhook_url"], delivery)
        ).status_code == 200
        await owner.wait_for("message.created", lambda e: len(e) == 1)
    own = await create_cloud_instance(other_tenant)  # B has events of its own too
    delivery = cloud_delivery(
        own["phone_number_id"],
        cloud_text("5511955553333", f"wamid.{uuid.uuid4().hex}", "oi", int(time.time())),
    )
    assert (await post_cloud(other_tenant.client, own["webhook_url"], delivery)).status_code == 200
    replay = EventListener(other_tenant.client)
    replay.last_id = "0-0"
    async with replay:
        await replay.wait_for("message.created", lambda e: len(e) == 1)
    seen = orjson.dumps(replay.events).decode()
    assert secret_text not in seen and tenant.id not in seen


# --- oversized bodies and slow clients ----------------------------------------------------------


async def test_an_oversized_body_is_refused_before_it_is_read(api_url: str, tenant: Tenant) -> None:
    """Whoever sends it: FastAPI reads a body before authenticating its sender."""
    big = b'{"body": "' + b"x" * MAX_BODY_BYTES + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as anonymous:
        declared = await anonymous.post("/api/v1/notes", content=big)
        streamed = await tenant.client.post("/api/v1/notes", content=chunks())
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"]["code"] == "payload_too_large"
    small = await tenant.client.post("/api/v1/notes", json={"body": "x"})
    assert small.status_code == 422  # a body under the cap reaches the route


_UNSTORABLE = [
    pytest.param(
        ("POST", "/api/v1/users"),
        {"json": {"email": "nul@example.com", "name": "a\x00b", "role": "agent"}},
        "body.name",
        id="users",
    ),
    pytest.param(
        ("POST", "/api/v1/instances"),
        {
            "json": {
                "name": "Sales\x00",
                "provider": "cloud",
                "phone_number_id": "1555000111",
                "access_token": "token",
                "app_secret": "secret",
            }
        },
        "body.name",
        id="instances",
    ),
    pytest.param(
        ("POST", "/api/v1/contacts"),
        {"json": {"phone_number": "+5511999990001", "custom_fields": {"pl\x00an": "x"}}},
        "body.custom_fields.pl\\x00an",
        id="a-key",
    ),
    pytest.param(
        ("POST", "/api/v1/funnels"),
        {"json": {"name": "Sales", "stages": [{"name": "New\x00"}]}},
        "body.stages.0.name",
        id="nested",
    ),
    pytest.param(
        ("POST", "/api/v1/contacts"),
        {"content": b'{"phone_number": "+5511999990002", "name": "\\ud800"}'},
        "body.name",
        id="lone-surrogate",
    ),
    pytest.param(("GET", "/api/v1/contacts?q=a%00"), {}, "query.q", id="query"),
    pytest.param(
        ("POST", "/api/v1/flows"),
        {
            "content": b'name: "a\\0b"\nstart: done\nnodes: [{id: done, type: end}]\n',
            "headers": {"content-type": "application/yaml"},
        },
        "body.name",
        id="yaml",
    ),
    pytest.param(
        ("POST", "/api/v1/contacts/import"),
        {"content": b"phone_number,name\n+5511999990003,A\x00\n"},
        "file",
        id="csv",
    ),
    pytest.param(("POST", "/webhooks/cloud/ab%00cd"), {"content": b"{}"}, "path", id="path"),
]


@pytest.mark.parametrize(("route", "request_kwargs", "field"), _UNSTORABLE)
async def test_text_postgres_cannot_store_is_a_422_naming_the_field(
    tenant: Tenant, route: tuple[str, str], request_kwargs: dict[str, Any], field: str
) -> None:
    """A NUL or an unpaired surrogate, in any body, query or path: a 422 naming where, never
    a failed query (a 500 that logged the statement's values)."""
    method, path = route
    answer = await tenant.client.request(method, path, **request_kwargs)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"].startswith(f"{field}:"), answer.text


async def test_a_json_escape_that_only_looks_like_a_nul_is_stored(tenant: Tenant) -> None:
    """The refusal reads the JSON: a backslash followed by ``u0000`` is text like any other."""
    name = "C:\\u0000\\dir"  # backslash, "u0000", backslash, "dir"
    created = await tenant.client.post(
        "/api/v1/contacts", json={"phone_number": "+5511999990009", "name": name}
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name


async def test_slow_clients_hold_no_database_connection(
    api_url: str, tenant: Tenant, settings: Settings
) -> None:
    """Slowloris: more connections than the database pool holds, each sending its headers or
    its webhook body a little at a time and never finishing; everyone else is still served."""
    instance = await create_cloud_instance(tenant)
    webhook_path = "/" + instance["webhook_url"].split("://", 1)[1].split("/", 1)[1]
    port = int(api_url.rsplit(":", 1)[1])
    pool = settings.database_pool_size + settings.database_max_overflow
    writers = []
    for i in range(3 * pool):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        if i % 2:
            writer.write(f"POST {webhook_path} HTTP/1.1\r\nHost: x\r\n".encode())  # headers...
        else:
            head = (
                f"POST {webhook_path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                'content-length: 100000\r\n\r\n{"object": '
            )
            writer.write(head.encode())  # ... or a body, never finished
        await writer.drain()
        writers.append(writer)
    try:
        body = cloud_delivery(
            instance["phone_number_id"],
            cloud_text("5511944443333", f"wamid.{uuid.uuid4().hex}", "oi", int(time.time())),
        )
        delivered = await post_cloud(tenant.client, instance["webhook_url"], body)
        assert delivered.status_code == 200, delivered.text
        assert (await tenant.client.get("/api/v1/conversations")).status_code == 200
    finally:
        for writer in writers:
            writer.close()


async def test_unknown_webhook_tokens_cannot_grow_the_api_memory(sessions: SessionFactory) -> None:
    """Anyone can post to /webhooks/cloud/<anything>: the lookups of unknown tokens are cached
    (a flood of them costs no queries) in a bounded cache."""
    instances = WebhookInstances(max_entries=5)
    for _ in range(20):
        with pytest.raises(NotFound):
            await instances.find(sessions, WhatsAppProvider.CLOUD, uuid.uuid4().hex)
    assert len(instances) == 5


# --- browser-facing headers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/app/", "/app/js/thread.js", "/api/v1/conversations", "/api/v1/nothing", "/healthz"]
)
async def test_every_response_carries_the_security_headers(tenant: Tenant, path: str) -> None:
    headers = (await tenant.client.get(path)).headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"


async def test_the_api_docs_keep_their_cdn_scripts_but_cannot_be_framed(tenant: Tenant) -> None:
    headers = (await tenant.client.get("/docs")).headers
    assert headers["content-security-policy"] == "frame-ancestors 'none'"
    assert headers["x-frame-options"] == "DENY"
