"""The cross-tenant matrix (OWASP API1, broken object-level authorization): company B, with its
own admin key, names company A's objects on every route of the API and gets 404, never 2xx, 403
or 500; A's objects stay as they were.

The routes come from the app's OpenAPI document, so a new route joins the matrix by itself, and
a path, query or body parameter that names an object but is unknown to the maps below fails
loudly instead of escaping it. Webhooks are left out: provider secrets, not API keys, guard them;
so is sign-in (``/auth/*``): it takes no credential, a password names the person
(tests/test_user_sessions.py).

One pair of companies serves the whole module. After each test both are compared with how they
stood (A through A's key, both row by row in the database); a test that fails leaves the pair
dirty and the next one builds a fresh pair, so one leak cannot show up as another test's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from tests.fixtures.app import api_routes
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.tenancy import (
    FLOW_DOCUMENT,
    UUID,
    World,
    build_world,
    fingerprint,
    snapshot,
)
from zapflow.api.app import create_app
from zapflow.api.deps import Requirement
from zapflow.config import load_settings
from zapflow.db import SessionFactory
from zapflow.flows.language import FlowDefinition
from zapflow.models import UserRole
from zapflow.services.permissions import Permission, role_can

APP = create_app(load_settings())
SPEC = APP.openapi()
API = "/api/v1"
JSON = "application/json"

# A parameter naming an object → the kind of the object in ``World.objects``.
PATH_OBJECTS = {
    "instance_id": "instance",
    "contact_id": "contact",
    "conversation_id": "conversation",
    "note_id": "note",
    "funnel_id": "funnel",
    "stage_id": "stage",
    "deal_id": "deal",
    "user_id": "user",
    "key_id": "key",
    "letter_id": "letter",
    "tag": "tag",
    "flow_id": "flow",
    "run_id": "flow_run",
    "version": "flow_version",
    "followup_id": "followup",
    "session_id": "session",
    "team_id": "team",
    "canned_id": "canned",
    "media_id": "media",
    "template_id": "template",
    "campaign_id": "campaign",
}
QUERY_OBJECTS = {
    "team_id": "team",
    "contact_id": "contact",
    "deal_id": "deal",
    "instance_id": "instance",
    "funnel_id": "funnel",
    "stage_id": "stage",
    "assigned_user_id": "user",
    "owner_user_id": "user",
    "move_to": "stage",
    "conversation_id": "conversation",
}
BODY_OBJECTS = {
    "team_id": "team",
    "contact_id": "contact",
    "deal_id": "deal",
    "funnel_id": "funnel",
    "stage_id": "stage",
    "stage_ids": "stage",
    "user_id": "user",
    "owner_user_id": "user",
    "conversation_id": "conversation",
    "instance_id": "instance",
}
# path parameters naming an object by its name or number, not its id
NOT_IDS = frozenset({"tag", "version"})

# Bodies whose schema has no example free of ids (ids must be the caller's own, or absent).
HAND_BODIES: dict[tuple[str, str], Callable[[World], dict[str, Any]]] = {
    ("PATCH", f"{API}/instances/{{instance_id}}"): lambda w: {"name": f"Renamed {w.token}"},
    ("POST", f"{API}/conversations/{{conversation_id}}/assign"): lambda w: {
        "user_id": w.objects["user"]
    },
    ("PUT", f"{API}/funnels/{{funnel_id}}/stages/order"): lambda w: {
        "stage_ids": list(reversed(w.stages))
    },
    ("POST", f"{API}/deals/{{deal_id}}/move"): lambda w: {"stage_id": w.stages[1]},
    ("POST", f"{API}/deals"): lambda w: {
        "title": f"Deal {w.token}",
        "funnel_id": w.objects["funnel"],
        "stage_id": w.stages[0],
        "contact_id": w.objects["contact"],
    },
    ("POST", f"{API}/conversations/{{conversation_id}}/transfer"): lambda w: {
        "team_id": w.objects["team"]
    },
    ("POST", f"{API}/notes"): lambda w: {"body": "x", "contact_id": w.objects["contact"]},
    ("PUT", f"{API}/flows/{{flow_id}}"): lambda w: FLOW_DOCUMENT,
    ("POST", f"{API}/flows"): lambda w: FLOW_DOCUMENT,
    ("POST", f"{API}/flows/validate"): lambda w: FLOW_DOCUMENT,
    ("POST", f"{API}/flows/{{flow_id}}/publish"): lambda w: {"note": f"Published by {w.token}"},
    ("POST", f"{API}/flows/{{flow_id}}/runs"): lambda w: {"contact_id": w.objects["contact"]},
    # a preview: the world stays as it is for the next routes
    ("POST", f"{API}/contacts/{{contact_id}}/merge"): lambda w: {
        "contact_id": w.objects["customer"],
        "preview": True,
    },
    ("POST", f"{API}/templates/sync"): lambda w: {"instance_id": w.objects["instance"]},
    ("POST", f"{API}/templates"): lambda w: {
        "instance_id": w.objects["instance"],
        "name": "novo",
        "language": "pt_BR",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Oi"}],
    },
    ("POST", f"{API}/campaigns"): lambda w: {
        "name": "x",
        "instance_id": w.objects["instance"],
        "message": {"template": {"name": "promo"}, "parameters": {"body": [{"value": "x"}]}},
        "scheduled_at": "2099-01-01T00:00:00Z",
    },
    ("POST", f"{API}/campaigns/preview"): lambda w: {
        "instance_id": w.objects["instance"],
        "message": {"template": {"name": "promo"}, "parameters": {"body": [{"value": "x"}]}},
    },
    ("POST", f"{API}/api-keys"): lambda w: {
        "name": "agent key",
        "role": "agent",
        "user_id": w.objects["user"],
    },
}
# Query parameters a list needs; fields of which a request names exactly one.
BASE_QUERIES: dict[str, Callable[[World], dict[str, str]]] = {
    f"{API}/notes": lambda w: {"contact_id": w.objects["contact"]},
    f"{API}/search": lambda w: {"q": w.token},  # the token is in the company's messages
}
ONE_OF = {f"{API}/notes": frozenset({"contact_id", "deal_id"})}
STREAMS = frozenset({f"{API}/stream"})  # the company stream never ends: see test_live_events
# lists naming nothing of the company
# lists naming nothing of the company, or empty in a world of unique contacts (no duplicate
# pair) or no campaign; a company key has no browser sessions of its own
NO_OWN_ROWS = frozenset(
    {
        f"{API}/ops/queues",
        f"{API}/flows/schema",
        f"{API}/me/sessions",
        f"{API}/campaigns/audience",
        f"{API}/contacts/duplicates",
        # figures, not rows: tests/test_reports_csat.py shows another company's are not counted
        f"{API}/reports/conversations",
        f"{API}/reports/slas",
        f"{API}/reports/messages",
        f"{API}/reports/heatmap",
        f"{API}/reports/csat",
    }
)


# --- the operations, from the OpenAPI document --------------------------------------------------


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return SPEC["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def _is_uuid(schema: dict[str, Any]) -> bool:
    """A uuid, a list of uuids, or either of them or null."""
    for option in schema.get("anyOf", [schema]):
        items = option.get("items")
        if option.get("format") == "uuid" or (items is not None and _is_uuid(items)):
            return True
    return False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any] = field(compare=False, repr=False)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def params(self, where: str) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == where]

    def uuid_query_params(self) -> list[str]:
        return [
            p["name"]
            for p in self.spec.get("parameters", [])
            if p["in"] == "query" and _is_uuid(p["schema"])
        ]

    @property
    def body_schema(self) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        return _resolve(content[JSON]["schema"]) if JSON in content else None

    def uuid_body_fields(self) -> list[str]:
        schema = self.body_schema or {}
        return [name for name, prop in schema.get("properties", {}).items() if _is_uuid(prop)]

    def url(self, path_values: dict[str, str]) -> str:
        return self.path.format(**path_values)


OPERATIONS = [
    Operation(method.upper(), path, spec)
    for path, methods in SPEC["paths"].items()
    for method, spec in methods.items()
    if not path.startswith(("/webhooks/", "/auth/"))
]
OBJECT_OPERATIONS = [op for op in OPERATIONS if op.params("path")]
LIST_OPERATIONS = [
    op
    for op in OPERATIONS
    if op.method == "GET"
    and op.path.startswith(API)
    and not op.params("path")
    and op.path not in STREAMS
]


@dataclass(frozen=True)
class Case:
    """An operation called by B with A's objects in ``foreign`` (names of parameters or
    fields), B's own everywhere else."""

    op: Operation
    foreign: tuple[str, ...]

    @property
    def id(self) -> str:
        everything = self.foreign == tuple(self.op.params("path"))
        return self.op.id if everything else f"{self.op.id} [{', '.join(self.foreign)} of A]"


def _matrix_cases() -> Iterator[Case]:
    for op in OBJECT_OPERATIONS:
        params = op.params("path")
        yield Case(op, tuple(params))
        ids = [p for p in params if p not in NOT_IDS]
        if len(ids) > 1:  # each id alone foreign: a child of A under a parent of B's
            yield from (Case(op, (p,)) for p in ids)


MATRIX = list(_matrix_cases())
QUERY_CASES = [Case(op, (name,)) for op in OPERATIONS for name in op.uuid_query_params()]
BODY_CASES = [Case(op, (name,)) for op in OPERATIONS for name in op.uuid_body_fields()]


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


# --- requests -----------------------------------------------------------------------------------


def _path_values(case: Case, a: World, b: World) -> dict[str, str]:
    unknown = [p for p in case.op.params("path") if p not in PATH_OBJECTS]
    assert not unknown, f"{case.op.id}: path parameters {unknown} unknown: add to PATH_OBJECTS"
    return {
        name: (a if name in case.foreign else b).objects[PATH_OBJECTS[name]]
        for name in case.op.params("path")
    }


def base_body(op: Operation, world: World) -> dict[str, Any] | None:
    """A valid body for ``op`` naming only ``world``'s objects: a hand-written one, else the
    first example of the schema that names no object."""
    schema = op.body_schema
    if schema is None:
        return None
    if (op.method, op.path) in HAND_BODIES:
        return HAND_BODIES[op.method, op.path](world)
    for example in schema.get("examples", []):
        if not UUID.search(json.dumps(example)):
            return dict(example)
    raise LookupError(f"{op.id}: no example without ids; write a body in HAND_BODIES")


def foreign_body(op: Operation, name: str, a: World, b: World) -> dict[str, Any]:
    """B's valid body with the field ``name`` naming A's object instead."""
    body = base_body(op, b) or {}
    for sibling in ONE_OF.get(op.path, frozenset()) - {name}:
        body.pop(sibling, None)
    foreign = a.objects[BODY_OBJECTS[name]]
    if isinstance(body.get(name), list):
        body[name] = [*body[name][:-1], foreign]  # the rest B's own: one foreign id is enough
    else:
        prop = (op.body_schema or {})["properties"][name]
        is_list = any(o.get("type") == "array" for o in prop.get("anyOf", [prop]))
        body[name] = [foreign] if is_list else foreign
    return body


@dataclass
class Answer:
    status: int
    text: str
    body: Any

    @property
    def error_code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if isinstance(error, dict) else None

    def __str__(self) -> str:
        return f"{self.status} {self.text[:300]}"


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    raw: tuple[bytes, str] | None = None,
) -> Answer:
    """``raw``: a body of another type than JSON (content, content type) instead of ``body``."""
    send: dict[str, Any] = {"json": body}
    if raw is not None:
        send = {"content": raw[0], "headers": {"content-type": raw[1]}}
    async with client.stream(method, url, params=params, **send) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return Answer(response.status_code, "<event stream>", None)  # never wait for events
        text = (await response.aread()).decode()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return Answer(response.status_code, text, parsed)


# --- fixtures -----------------------------------------------------------------------------------


class Worlds:
    """Companies A and B with their objects and how they stood, rebuilt after a failed test.
    A's objects are compared through A's key and in the database; B's in the database."""

    def __init__(self, api_url: str, sessions: SessionFactory, provider: ProviderServer) -> None:
        self._api_url = api_url
        self._sessions = sessions
        self._provider = provider
        self._pair: tuple[World, World] | None = None
        self._dirty = False
        self._before: dict[str, Any] = {}
        self.a_markers: frozenset[str] = frozenset()
        self.b_markers: frozenset[str] = frozenset()

    async def ready(self) -> tuple[World, World]:
        if self._dirty:
            await self.close()
        if self._pair is None:
            a, b = [
                await build_world(self._api_url, self._sessions, self._provider, label)
                for label in "ab"
            ]
            self._pair = (a, b)
            self._before = await self._state(b_too=True)
            self.a_markers = a.markers(await snapshot(a))
            self.b_markers = b.markers(await snapshot(b))
            self._dirty = False
        return self._pair

    @asynccontextmanager
    async def trial(self, *, b_too: bool = True) -> AsyncIterator[tuple[World, World]]:
        """The pair for one test, checked unchanged afterwards. A test that fails leaves it
        dirty, even before the check (what it did may show only later, such as a replayed
        send), so the next test gets a fresh pair."""
        pair = await self.ready()
        self._dirty = True
        yield pair
        await self.assert_unchanged(b_too=b_too)
        self._dirty = False

    async def _state(self, *, b_too: bool) -> dict[str, Any]:
        assert self._pair is not None
        a, b = self._pair
        state = {f"A's {name}": seen for name, seen in (await snapshot(a)).items()}
        for label, world in [("A", a), ("B", b)] if b_too else [("A", a)]:
            rows = await fingerprint(self._sessions, world.company_id)
            state |= {f"{label}'s {table} rows": seen for table, seen in rows.items()}
        return state

    async def assert_unchanged(self, *, b_too: bool = True) -> None:
        """A's objects, and B's unless the request named none of them, are as they were."""
        now = await self._state(b_too=b_too)
        changed = [f"{k}: {self._before[k]} → {v}" for k, v in now.items() if self._before[k] != v]
        assert not changed, "objects changed:\n" + "\n".join(changed)

    async def close(self) -> None:
        if self._pair is not None:
            for world in self._pair:
                await world.client.aclose()
        self._pair = None


@pytest.fixture(scope="module")
async def module_worlds(
    api_url: str, sessions: SessionFactory, provider_server_session: ProviderServer
) -> AsyncIterator[Worlds]:
    worlds = Worlds(api_url, sessions, provider_server_session)
    yield worlds
    await worlds.close()


@pytest.fixture
async def worlds(worker: None, module_worlds: Worlds) -> Worlds:
    await module_worlds.ready()
    return module_worlds


# --- the matrix ---------------------------------------------------------------------------------


def test_every_parameter_naming_an_object_is_mapped() -> None:
    """A new route cannot escape the matrix: its object parameters must be in the maps."""
    unknown = [
        *(f"{op.id}: path {p}" for op in OBJECT_OPERATIONS for p in op.params("path")
          if p not in PATH_OBJECTS),
        *(f"{c.id}: query" for c in QUERY_CASES if c.foreign[0] not in QUERY_OBJECTS),
        *(f"{c.id}: body" for c in BODY_CASES if c.foreign[0] not in BODY_OBJECTS),
    ]  # fmt: skip
    assert not unknown, f"add these to PATH_OBJECTS / QUERY_OBJECTS / BODY_OBJECTS: {unknown}"
    assert len(OBJECT_OPERATIONS) >= 40  # the document was read, not an empty one


ROUTE_BODIES = {
    (method, path): route.body_field.field_info.annotation
    for path, route in api_routes(APP.router.routes)
    for method in route.methods or ()
    if route.body_field is not None
}


# Bodies the route reads itself (a flow document, JSON or YAML, once the caller is known)
DOCUMENT_BODIES = {f"PUT {API}/flows/{{flow_id}}": FlowDefinition}


def _fake_world(label: str) -> World:
    ids = {kind: str(uuid.uuid4()) for kind in {*PATH_OBJECTS.values(), "customer"}}
    no_client = cast(httpx.AsyncClient, None)  # the bodies need ids, not requests
    stages = [ids["stage"], str(uuid.uuid4())]
    return World("company", label, no_client, {**ids, "tag": "vip"}, stages, frozenset(), "")


@pytest.mark.parametrize(
    ("case", "foreign"),
    [
        *(pytest.param(c, False, id=c.id) for c in MATRIX if c.op.body_schema),
        *(pytest.param(c, True, id=f"{c.id} (body)") for c in BODY_CASES),
    ],
)
def test_the_bodies_sent_are_valid(case: Case, foreign: bool) -> None:
    """The bodies sent pass validation, so the ownership check is what answers them."""
    a, b = _fake_world("a"), _fake_world("b")
    body = foreign_body(case.op, case.foreign[0], a, b) if foreign else base_body(case.op, b)
    assert body is not None
    model = ROUTE_BODIES.get((case.op.method, case.op.path)) or DOCUMENT_BODIES.get(case.op.id)
    assert model is not None, f"{case.id}: its route was not found in the app"
    try:
        TypeAdapter(model).validate_json(json.dumps(body))
    except ValidationError as exc:
        pytest.fail(f"{case.id}: the body {body} is invalid: {exc}")
    own = set(UUID.findall(json.dumps(body))) - set(a.objects.values())
    assert own <= set(b.objects.values()) | set(b.stages), f"{case.id}: ids not B's: {body}"


@pytest.mark.parametrize("case", _params(MATRIX))
async def test_another_companys_object_is_not_found(case: Case, worlds: Worlds) -> None:
    names_b = case.foreign != tuple(case.op.params("path"))  # B's own objects in the path too
    async with worlds.trial(b_too=names_b) as (a, b):
        url = case.op.url(_path_values(case, a, b))
        answer = await call(b.client, case.op.method, url, base_body(case.op, b))
        assert answer.status == 404 and answer.error_code == "not_found", f"{case.id}: {answer}"
        assert answer.body["error"]["message"] != "Not Found", "no route matched: fix the URL"
        assert not {m for m in worlds.a_markers if m in answer.text and m not in url}, str(answer)


@pytest.mark.parametrize("op", LIST_OPERATIONS, ids=lambda op: op.id)
async def test_lists_show_only_the_callers_rows(op: Operation, worlds: Worlds) -> None:
    async with worlds.trial(b_too=False) as (_, b):
        params = BASE_QUERIES[op.path](b) if op.path in BASE_QUERIES else None
        answer = await call(b.client, op.method, op.path, params=params)
        assert answer.status == 200, f"{op.id}: {answer}"
        leaked = {marker for marker in worlds.a_markers if marker in answer.text}
        assert not leaked, f"{op.id} shows A's {leaked}: {answer}"
        if op.path not in NO_OWN_ROWS:
            assert any(m in answer.text for m in worlds.b_markers), f"{op.id}: B's rows? {answer}"


def _refused(answer: Answer) -> bool:
    return answer.status in (404, 422) and answer.error_code in ("not_found", "validation_error")


@pytest.mark.parametrize("case", _params(QUERY_CASES))
async def test_a_filter_naming_another_companys_object_finds_nothing(
    case: Case, worlds: Worlds
) -> None:
    """404/422 naming the parameter, or (reading) an empty list: never A's rows, never a
    change made through them."""
    async with worlds.trial() as (a, b):
        (name,) = case.foreign
        params = BASE_QUERIES[case.op.path](b) if case.op.path in BASE_QUERIES else {}
        for sibling in ONE_OF.get(case.op.path, frozenset()) - {name}:
            params.pop(sibling, None)
        params[name] = a.objects[QUERY_OBJECTS[name]]
        url = case.op.url(_path_values(case, a, b))
        answer = await call(b.client, case.op.method, url, base_body(case.op, b), params)
        if _refused(answer):
            assert name in answer.text, f"{case.id}: the error should name {name}: {answer}"
        else:
            assert case.op.method == "GET" and answer.status == 200, f"{case.id}: {answer}"
            assert isinstance(answer.body, dict) and answer.body.get("data") == [], str(answer)
        assert not {m for m in worlds.a_markers - {params[name]} if m in answer.text}, str(answer)


@pytest.mark.parametrize("case", _params(BODY_CASES))
async def test_a_body_naming_another_companys_object_is_refused(case: Case, worlds: Worlds) -> None:
    """404/422 naming the field, and nothing created or changed in either company."""
    async with worlds.trial() as (a, b):
        (name,) = case.foreign
        body = foreign_body(case.op, name, a, b)
        url = case.op.url(_path_values(Case(case.op, ()), a, b))
        answer = await call(b.client, case.op.method, url, body)
        assert _refused(answer), f"{case.id}: {answer}"
        assert name in answer.text, f"{case.id}: the error should name {name}: {answer}"


async def test_another_companys_phone_number_names_only_the_callers_contact(
    worlds: Worlds,
) -> None:
    """Contacts are also found by phone number (create conflicts, CSV import upserts): A's
    number sent by B makes and updates a contact of B's own, and A's is left alone."""
    async with worlds.trial() as (a, b):
        a_contact = await call(a.client, "GET", f"{API}/contacts/{a.objects['contact']}")
        phone = a_contact.body["phone_number"]
        created = await call(
            b.client, "POST", f"{API}/contacts", {"name": f"Twin {b.token}", "phone_number": phone}
        )
        assert created.status == 201, str(created)
        csv = f"phone_number,name\n{phone},Twin again\n".encode()
        imported = await b.client.post(
            f"{API}/contacts/import", content=csv, headers={"content-type": "text/csv"}
        )
        assert (imported.status_code, imported.json()["updated"]) == (200, 1), imported.text
        twin = await call(b.client, "GET", f"{API}/contacts/{created.body['id']}")
        assert twin.body["name"] == "Twin again"
        for answer in (created, twin):
            assert not {m for m in worlds.a_markers if m in answer.text}, str(answer)
        deleted = await b.client.delete(f"{API}/contacts/{created.body['id']}")
        assert deleted.status_code == 204  # B as it was, for the next tests


# --- the role matrix ----------------------------------------------------------------------------
# Every route declares one permission (``Requires(...)``); an agent's key is refused, with a 403
# naming it, what the agent role lacks (this table is the policy, SECURITY.md shows it) and gets
# everything else as an admin would. The table must name exactly the routes the code refuses.

AGENT_FORBIDDEN = {
    "PATCH /api/v1/company": "company:manage",
    "POST /api/v1/users": "users:manage",
    "PATCH /api/v1/users/{user_id}": "users:manage",
    "DELETE /api/v1/users/{user_id}": "users:manage",
    "POST /api/v1/users/invites": "users:manage",
    "POST /api/v1/users/{user_id}/reset-link": "users:manage",
    "POST /api/v1/teams": "teams:manage",
    "PATCH /api/v1/teams/{team_id}": "teams:manage",
    "PUT /api/v1/teams/{team_id}/members/{user_id}": "teams:manage",
    "DELETE /api/v1/teams/{team_id}/members/{user_id}": "teams:manage",
    "GET /api/v1/api-keys": "api_keys:manage",
    "POST /api/v1/api-keys": "api_keys:manage",
    "DELETE /api/v1/api-keys/{key_id}": "api_keys:manage",
    "POST /api/v1/instances": "instances:manage",
    "PATCH /api/v1/instances/{instance_id}": "instances:manage",
    "DELETE /api/v1/instances/{instance_id}": "instances:manage",
    "GET /api/v1/contacts/export": "contacts:export",
    "POST /api/v1/contacts/import": "contacts:import",
    "DELETE /api/v1/contacts/{contact_id}": "contacts:delete",
    "POST /api/v1/funnels": "funnels:manage",
    "PATCH /api/v1/funnels/{funnel_id}": "funnels:manage",
    "DELETE /api/v1/funnels/{funnel_id}": "funnels:manage",
    "POST /api/v1/funnels/{funnel_id}/stages": "funnels:manage",
    "PUT /api/v1/funnels/{funnel_id}/stages/order": "funnels:manage",
    "PATCH /api/v1/funnels/{funnel_id}/stages/{stage_id}": "funnels:manage",
    "DELETE /api/v1/funnels/{funnel_id}/stages/{stage_id}": "funnels:manage",
    "POST /api/v1/flows": "flows:write",
    "PUT /api/v1/flows/{flow_id}": "flows:write",
    "DELETE /api/v1/flows/{flow_id}": "flows:write",
    "POST /api/v1/flows/{flow_id}/publish": "flows:write",
    "POST /api/v1/flows/{flow_id}/simulate": "flows:write",
    "POST /api/v1/flows/validate": "flows:write",
    "GET /api/v1/ops/queues": "ops:manage",
    "GET /api/v1/ops/dead-letters": "ops:manage",
    "POST /api/v1/ops/dead-letters/{letter_id}/replay": "ops:manage",
    "POST /api/v1/templates/sync": "templates:manage",
    "POST /api/v1/templates": "templates:manage",
    "DELETE /api/v1/templates/{template_id}": "templates:manage",
    "POST /api/v1/campaigns": "campaigns:manage",
    "PATCH /api/v1/campaigns/{campaign_id}": "campaigns:manage",
    "POST /api/v1/campaigns/{campaign_id}/pause": "campaigns:manage",
    "POST /api/v1/campaigns/{campaign_id}/resume": "campaigns:manage",
    "POST /api/v1/campaigns/{campaign_id}/cancel": "campaigns:manage",
    "POST /api/v1/campaigns/audiences/csv": "campaigns:manage",
    "GET /api/v1/reports/conversations": "reports:read",
    "GET /api/v1/reports/slas": "reports:read",
    "GET /api/v1/reports/messages": "reports:read",
    "GET /api/v1/reports/heatmap": "reports:read",
    "GET /api/v1/reports/csat": "reports:read",
}
# Allowed by the route, refused by the object: an agent changes only the notes it wrote (the
# world's note is its admin's).
AGENT_NOT_AUTHOR = {
    "PATCH /api/v1/notes/{note_id}": "notes:manage",
    "DELETE /api/v1/notes/{note_id}": "notes:manage",
    "PATCH /api/v1/canned-responses/{canned_id}": "canned:manage",
    "DELETE /api/v1/canned-responses/{canned_id}": "canned:manage",
    "DELETE /api/v1/media/{media_id}": "media:manage",  # the world's file is its admin's
}
# Allowed to agents, but only in a browser session (an API key gets a 422 saying so):
# tests/test_user_sessions.py calls them signed in.
SESSION_ONLY = frozenset({f"POST {API}/me/sign-out", f"POST {API}/me/password"})
# The agent's own calls that need another body than the cross-tenant matrix's.
AGENT_BODIES: dict[str, Callable[[World], dict[str, Any]]] = {
    f"POST {API}/flows/{{flow_id}}/runs": lambda w: {"contact_id": w.objects["customer"]},
}
# A body per content type the matrix does not send as JSON.
RAW_BODIES = {
    f"POST {API}/contacts/import": (b"phone_number,name\n+5511900000000,X\n", "text/csv"),
    f"POST {API}/campaigns/audiences/csv": (b"phone_number,name\n+5511900000000,X\n", "text/csv"),
    f"POST {API}/media": (b"%PDF-1.7\n%%EOF\n", "application/pdf"),
}


def _requirements(dependant: Any) -> Iterator[Requirement]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Requirement):
            yield dependency.call
        yield from _requirements(dependency)


API_ROUTES = [(path, r) for path, r in api_routes(APP.router.routes) if path.startswith(API)]


def test_every_route_declares_one_permission() -> None:
    """A new route without ``Requires(...)`` fails here; one with a permission the agent lacks
    fails the matrix below until the table names it."""
    undeclared = [
        f"{sorted(route.methods or ())} {path}"
        for path, route in API_ROUTES
        if len({r.permission for r in _requirements(route.dependant)}) != 1
    ]
    assert not undeclared, f"declare one Requires(Permission...) on: {undeclared}"
    declared = {
        f"{method} {path}": next(_requirements(route.dependant)).permission
        for path, route in API_ROUTES
        for method in route.methods or ()
    }
    refused = {op: p.value for op, p in declared.items() if not role_can(UserRole.AGENT, p)}
    assert refused == AGENT_FORBIDDEN, "the policy table and the routes disagree"
    assert len(declared) == len([op for op in OPERATIONS if op.path.startswith(API)]) >= 80


def _raw_or_json(op: Operation, world: World) -> dict[str, Any]:
    if op.id in RAW_BODIES:
        content, content_type = RAW_BODIES[op.id]
        return {"content": content, "headers": {"content-type": content_type}}
    return {"json": base_body(op, world)}


def _query(op: Operation, world: World) -> dict[str, str] | None:
    return BASE_QUERIES[op.path](world) if op.path in BASE_QUERIES else None


def _agent(world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=str(world.client.base_url),
        headers={"Authorization": f"Bearer {world.agent_key}"},
        timeout=10,
    )


def _own_values(op: Operation, world: World) -> dict[str, str]:
    return {name: world.objects[PATH_OBJECTS[name]] for name in op.params("path")}


REFUSED_TO_AGENTS = [op for op in OPERATIONS if op.id in AGENT_FORBIDDEN | AGENT_NOT_AUTHOR]
# what changes least first, deletions last: each call finds the objects it names
ALLOWED_TO_AGENTS = sorted(
    (
        op
        for op in OPERATIONS
        if op.path.startswith(API) and op not in REFUSED_TO_AGENTS and op.id not in SESSION_ONLY
    ),
    key=lambda op: ["GET", "POST", "PUT", "PATCH", "DELETE"].index(op.method),
)


@pytest.mark.parametrize("op", REFUSED_TO_AGENTS, ids=lambda op: op.id)
async def test_an_agent_is_refused_what_its_role_lacks(op: Operation, worlds: Worlds) -> None:
    """403 with the error shape naming the permission, and nothing changed in the company."""
    async with worlds.trial() as (_, b), _agent(b) as agent:
        request = agent.build_request(
            op.method, op.url(_own_values(op, b)), params=_query(op, b), **_raw_or_json(op, b)
        )
        response = await agent.send(request)
        permission = (AGENT_FORBIDDEN | AGENT_NOT_AUTHOR)[op.id]
        assert response.status_code == 403, f"{op.id}: {response.status_code} {response.text}"
        error = response.json()["error"]
        assert error["code"] == "forbidden" and error["details"]["permission"] == permission
        assert error["message"], op.id


@pytest.fixture(scope="module")
async def agents_world(
    api_url: str, sessions: SessionFactory, provider_server_session: ProviderServer, worker: None
) -> AsyncIterator[World]:
    """A company of its own for the agent's allowed calls (they change it)."""
    world = await build_world(api_url, sessions, provider_server_session, "r")
    yield world
    await world.client.aclose()


@pytest.mark.parametrize("op", ALLOWED_TO_AGENTS, ids=lambda op: op.id)
async def test_an_agent_may_do_the_rest(op: Operation, agents_world: World) -> None:
    """Every other route answers the agent's key with a 2xx; instances without the webhook URL,
    verify token and JWT key, and no answer holds a secret of the company."""
    world = agents_world
    url = op.url(_own_values(op, world))
    async with _agent(world) as agent:
        body = AGENT_BODIES[op.id](world) if op.id in AGENT_BODIES else base_body(op, world)
        answer = await call(agent, op.method, url, body, _query(op, world), RAW_BODIES.get(op.id))
    assert 200 <= answer.status < 300, f"{op.id}: {answer}"
    assert not {s for s in world.secrets if s in answer.text}, f"{op.id} shows a secret"
    if op.path.startswith(f"{API}/instances"):
        rows = answer.body if isinstance(answer.body, list) else [answer.body]
        hidden = ("webhook_url", "verify_token", "evolution_jwt_key")
        assert rows and all(row[field] is None for row in rows for field in hidden)


NO_ROUTE = {
    Permission.NOTES_MANAGE: "(object rule: a note of someone else, "
    "`PATCH`/`DELETE /notes/{note_id}`)",
    Permission.CANNED_MANAGE: "(object rule: the company's, `POST /canned-responses` with "
    "`company_wide`, `PATCH`/`DELETE /canned-responses/{canned_id}`)",
    Permission.MEDIA_MANAGE: "(object rule: a file someone else uploaded, "
    "`DELETE /media/{media_id}`)",
}


def test_security_md_shows_the_role_matrix() -> None:
    """SECURITY.md's role matrix is the code's: a row per permission, its routes, who holds it."""
    routes: dict[Permission, list[str]] = {permission: [] for permission in Permission}
    for path, route in API_ROUTES:
        permission = next(_requirements(route.dependant)).permission
        routes[permission] += [f"`{m} {path.removeprefix(API)}`" for m in sorted(route.methods)]
    document = (Path(__file__).resolve().parents[1] / "SECURITY.md").read_text()
    for permission, named in routes.items():
        supervisor, agent = (
            "yes" if role_can(role, permission) else "**no** (403)"
            for role in (UserRole.SUPERVISOR, UserRole.AGENT)
        )
        listed = ", ".join(named) or NO_ROUTE[permission]
        row = f"| `{permission.value}` | {listed} | yes | {supervisor} | {agent} |"
        assert row in document, f"SECURITY.md should have the row: {row}"
