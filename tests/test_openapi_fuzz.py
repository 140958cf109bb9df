"""schemathesis against zapflow's own OpenAPI document: every operation, called with an admin key
and with an agent key and generated parameters and bodies (valid and invalid), never answers 5xx
and answers in the documented shape. Streams are left out (they never end):
tests/test_live_events.py and the tenancy matrix cover them. ``ZAPFLOW_FUZZ_SCALE`` multiplies
the examples per operation.

The company is full (tests/fixtures/tenancy.py's one of every object, the demo seed's contacts,
conversations and deals, and spare objects for the deletes), and a generated id that is a valid
uuid is replaced by one of the company's, so valid calls reach the code behind the 404; the last
test proves they do: a share of each operation's valid calls succeeds."""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import text

from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.system import api_in_thread
from tests.fixtures.tenancy import FLOW_DOCUMENT, build_world
from tests.fuzz import DERANDOMIZE, SCALE
from zapflow.api.app import create_app
from zapflow.config import Settings, load_settings
from zapflow.db import SessionFactory, create_engine
from zapflow.devstack import free_port
from zapflow.seed import TAGS, SeedOptions, seed_demo

# make test: examples and random fuzzing; make test-faults (SCALE > 1) adds the coverage
# phase (boundary values, missing auth, every undocumented method: ~4,000 calls)
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": SCALE > 1}}})
SCHEMA = schemathesis.openapi.from_dict(
    create_app(load_settings()).openapi(), config=CONFIG
).exclude(path_regex=r"/stream$")
FUZZ = settings(
    max_examples=4 * SCALE,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
SPARES = 8 * SCALE  # objects of each kind made for DELETE calls only

# Parameters (path, query or body) naming one of the company's objects → the object's kind.
KINDS = {
    "contact_id": "contact",
    "conversation_id": "conversation",
    "deal_id": "deal",
    "flow_id": "flow",
    "followup_id": "followup",
    "funnel_id": "funnel",
    "instance_id": "instance",
    "key_id": "key",
    "letter_id": "letter",
    "note_id": "note",
    "run_id": "flow_run",
    "stage_id": "stage",
    "move_to": "stage",
    "user_id": "user",
    "owner_user_id": "user",
    "assigned_user_id": "user",
    "tag": "tag",
    "canned_id": "canned",
    "team_id": "team",
    "template_id": "template",
    "campaign_id": "campaign",
}
# Operations whose rules go beyond what the schema says, so that generated calls (seldom or never)
# pass them, and why; their calls must still never fail.
BEYOND_THE_SCHEMA = {
    "POST /api/v1/contacts/import": "a generated string is no CSV with a phone_number header",
    "POST /api/v1/campaigns/audiences/csv": "as above: tests/test_campaign_audiences.py",
    "PATCH /api/v1/campaigns/{campaign_id}": "only a campaign not yet started is edited (409"
    " once running, as the full company's are): tests/test_campaign_schedule.py",
    "POST /api/v1/flows": "a generated graph breaks the flow language's rules (422 by node)",
    "PUT /api/v1/flows/{flow_id}": "as above",
    "POST /api/v1/conversations/{conversation_id}/followups": "exactly one of `at` (future) and "
    "`after` (0 to 365 days) per step, with text or a configured template",
    "GET /webhooks/cloud/{token}": "the provider's token: fuzzed in tests/test_fuzz_payloads.py",
    "POST /webhooks/cloud/{token}": "signed by the provider: tests/test_fuzz_payloads.py",
    "POST /webhooks/evolution/{token}": "the provider's key: tests/test_fuzz_payloads.py",
    "POST /webhooks/evolution/{token}/{event_suffix}": "as above",
    "POST /auth/sign-in": "a generated password is not the person's: tests/test_user_sessions.py",
    "POST /auth/accept": "a generated token is no invite or reset link: as above",
    "GET /auth/oidc/start": "no OpenID Connect provider is configured here (404); with one, a "
    "redirect: tests/test_oidc.py",
    "GET /auth/oidc/callback": "as above",
    "PATCH /api/v1/me": "an API key is no signed-in person; /me acts on the caller's own "
    "session: as above",
    "POST /api/v1/me/password": "as above",
    "POST /api/v1/me/sign-out": "as above",
    "DELETE /api/v1/me/sessions/{session_id}": "as above",
    "POST /api/v1/conversations/{conversation_id}/take": "an admin's API key is no person to "
    "assign: tests/test_routing.py",
    "POST /api/v1/templates": "Meta's Graph API for a Cloud number with its business account: "
    "tests/test_templates.py against a fake Graph API",
    "POST /api/v1/templates/sync": "as above",
    "DELETE /api/v1/templates/{template_id}": "as above",
    "POST /api/v1/campaigns": "an APPROVED template whose parameters the body fills from contact "
    "fields: tests/test_campaigns.py",
    "GET /api/v1/reports/conversations": "`from` before `to`, at most 366 days apart, in "
    "2000-2999 (generated dates seldom are): tests/test_reports_csat.py",
    "GET /api/v1/reports/slas": "as above",
    "GET /api/v1/reports/messages": "as above",
    "GET /api/v1/reports/heatmap": "as above",
    "GET /api/v1/reports/csat": "as above",
}
MIN_SHARE = 0.1  # of an operation's valid calls (that the role may make) answered 2xx
# Fields unique in the company: a valid call gets a fresh value, or it would only repeat what an
# earlier call (the same schema example, for the other role) made, and get a 409.
FRESH: dict[str, Callable[[], str]] = {
    "phone_number": lambda: f"+55119{uuid.uuid4().int % 10**8:08d}",
    "email": lambda: f"fz.{uuid.uuid4().hex[:12]}@example.com",
    "phone_number_id": lambda: str(uuid.uuid4().int % 10**15),
    "evolution_instance": lambda: f"fz-{uuid.uuid4().hex[:12]}",
}
# lists that need one of their filters: a call that generated none of them gets this one
NEEDS_A_FILTER = {"/api/v1/notes": ("contact_id", ("contact_id", "deal_id"))}


@dataclass
class Company:
    keys: dict[str, str]  # role → API key
    kept: dict[str, list[str]]  # kind → objects every method but DELETE is given
    spare: dict[str, list[str]]  # kind → objects DELETE is given, each once
    stages: dict[str, list[str]]  # funnel → its stages
    turn: Counter[str] = field(default_factory=Counter)
    # (role, operation) → the statuses of its valid (positive) calls
    outcomes: defaultdict[tuple[str, str], Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )

    def pick(self, kind: str, delete: bool, funnel: str | None = None) -> str | None:
        pool = self.stages.get(funnel, []) if kind == "stage" and isinstance(funnel, str) else []
        if delete and kind != "tag" and not pool:
            spare = self.spare.get(kind, [])
            return spare.pop() if spare else None
        pool = pool or self.kept.get(kind, [])
        if not pool:
            return None
        self.turn[kind] += 1
        return pool[self.turn[kind] % len(pool)]


SEEN: Counter[int] = Counter()
COMPANY: list[Company] = []  # the module's company, for the last test


@pytest.fixture(scope="module")
async def company(
    api_url: str,
    worker: None,
    settings: Settings,
    sessions: SessionFactory,
    provider_server_session: ProviderServer,
) -> AsyncIterator[Company]:
    world = await build_world(api_url, sessions, provider_server_session, "fz")
    engine = create_engine(settings, pool_size=1)
    try:
        options = SeedOptions(contacts=60, messages=240, company_id=uuid.UUID(world.company_id))
        await seed_demo(engine, options)
    finally:
        await engine.dispose()
    client = world.client
    agent = await client.post(
        "/api/v1/api-keys",
        json={"name": "fuzzing agent", "role": "agent", "user_id": world.objects["user"]},
    )
    assert agent.status_code == 201, agent.text
    before = await _ids(sessions, world.company_id)
    await _make_spares(client, world.objects)
    # the keys and the user fuzzing acts as must survive (no DELETE, no deactivation)
    keys = {"admin": client.headers["authorization"].split()[-1], "agent": agent.json()["key"]}
    mine = {agent.json()["id"], world.objects["key"], world.objects["user"]}
    kept: dict[str, list[str]] = {}
    spare: dict[str, list[str]] = {}
    for kind, ids in (await _ids(sessions, world.company_id)).items():
        ids = [i for i in ids if i not in mine]
        spare[kind] = [i for i in ids if i not in before[kind]]
        kept[kind] = [i for i in ids if i in before[kind]]
    kept["tag"] = spare["tag"] = [world.objects["tag"], *(tag for tag, _ in TAGS)]
    made = Company(keys, kept, spare, await _stages(sessions, world.company_id))
    COMPANY.append(made)
    yield made
    await client.aclose()


async def _make_spares(client: httpx.AsyncClient, objects: dict[str, str]) -> None:
    """``SPARES`` more of each kind a DELETE route removes."""
    for n in range(SPARES):
        made = [
            await client.post("/api/v1/contacts", json={"phone_number": FRESH["phone_number"]()}),
            await client.post(
                "/api/v1/notes", json={"body": f"spare {n}", "contact_id": objects["contact"]}
            ),
            await client.post("/api/v1/flows", json={**FLOW_DOCUMENT, "name": f"spare {n}"}),
            await client.post(
                f"/api/v1/conversations/{objects['conversation']}/followups",
                json={"after": "P7D", "text": f"spare {n}"},
            ),
            await client.post(
                "/api/v1/funnels",
                json={"name": f"spare {n}", "stages": [{"name": "New"}, {"name": "Won"}]},
            ),
            await client.post(
                "/api/v1/deals",
                json={
                    "title": f"spare {n}",
                    "funnel_id": objects["funnel"],
                    "stage_id": objects["stage"],
                    "contact_id": objects["contact"],
                },
            ),
            await client.post(
                "/api/v1/users",
                json={"email": f"spare{n}@example.com", "name": f"Spare {n}", "role": "agent"},
            ),
            await client.post("/api/v1/api-keys", json={"name": f"spare {n}", "role": "admin"}),
            await client.post("/api/v1/teams", json={"name": f"spare {n}"}),
            await client.post(
                "/api/v1/canned-responses",
                json={"shortcut": f"spare{n}", "body": f"spare {n}", "company_wide": True},
            ),
            await client.post(
                "/api/v1/instances",
                json={
                    "name": f"spare {n}",
                    "provider": "evolution",
                    "evolution_instance": f"spare-{uuid.uuid4().hex[:8]}",
                    "api_key": "evo-key",
                },
            ),
        ]
        for response in made:
            assert response.status_code == 201, f"{response.request.url}: {response.text}"


_TABLES = {
    "contact": "contacts",
    "conversation": "conversations",
    "deal": "deals",
    "flow": "flows",
    "followup": "followup_queue",
    "funnel": "funnels",
    "instance": "whatsapp_instances",
    "key": "api_keys",
    "letter": "dead_letters",
    "note": "notes",
    "flow_run": "flow_runs",
    "stage": "stages",
    "user": "users",
    "canned": "canned_responses",
    "team": "teams",
    "template": "message_templates",
    "campaign": "campaigns",
}


async def _ids(sessions: SessionFactory, company_id: str) -> dict[str, list[str]]:
    found = {}
    async with sessions() as session:
        for kind, table in _TABLES.items():
            query = text(f"SELECT id FROM {table} WHERE company_id = :c ORDER BY id")
            rows = await session.execute(query, {"c": uuid.UUID(company_id)})
            found[kind] = [str(row.id) for row in rows]
    return found


async def _stages(sessions: SessionFactory, company_id: str) -> dict[str, list[str]]:
    query = text("SELECT funnel_id, id FROM stages WHERE company_id = :c ORDER BY position")
    async with sessions() as session:
        rows = (await session.execute(query, {"c": uuid.UUID(company_id)})).all()
    stages: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        stages[str(row.funnel_id)].append(str(row.id))
    return dict(stages)


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with api_in_thread(settings.model_copy(update={"api_port": free_port()})) as url:
        yield url
    print("schemathesis answers by status:", dict(sorted(SEEN.items())))


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _own(value: Any, name: str, company: Company, delete: bool, funnel: str | None) -> Any:
    """One of the company's objects instead of a generated id; other values as generated."""
    kind = KINDS.get(name)
    valid = _is_uuid(value) or (kind == "tag" and isinstance(value, str) and value)
    if kind is None or not valid:
        return value
    return company.pick(kind, delete, funnel) or value


def _with_company_objects(case: Any, company: Company) -> None:
    path = case.path_parameters or {}
    # a stage is picked among its funnel's
    funnel = path.get("funnel_id")
    if funnel is not None:  # a spare one when it, or one of its stages, is deleted
        removes = case.method == "DELETE"
        path["funnel_id"] = funnel = _own(funnel, "funnel_id", company, removes, None)
    for name, value in path.items():
        if name != "funnel_id":
            path[name] = _own(value, name, company, case.method == "DELETE", funnel)
    if case.query is not None:
        for name, value in case.query.items():
            case.query[name] = _own(value, name, company, False, None)
    added, one_of = NEEDS_A_FILTER.get(case.path, ("", ()))
    if added and case.method == "GET" and not set(one_of) & set(case.query or {}):
        case.query = {**(case.query or {}), added: company.pick(KINDS[added], False)}
    if isinstance(case.body, dict) and case.path.endswith("/merge"):
        # a merge deletes the contact its body names, which later calls name: a preview runs
        # the same code and rolls it back (tests/test_contact_merge.py merges for real)
        case.body["preview"] = True
    if isinstance(case.body, dict):
        if "funnel_id" in case.body:  # first: a stage is picked among its funnel's
            case.body["funnel_id"] = _own(case.body["funnel_id"], "funnel_id", company, False, None)
        body_funnel = case.body.get("funnel_id")
        for name, value in case.body.items():
            if name == "funnel_id":
                continue
            case.body[name] = _own(value, name, company, False, body_funnel)
            if name in FRESH and isinstance(value, str) and _positive(case):
                case.body[name] = FRESH[name]()


def _positive(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _stages_as_they_stand(case: Any, base_url: str, headers: dict[str, str]) -> None:
    """A stage order names every stage of the funnel as it stands (fuzzing adds some); a deal
    moves to a stage of its own funnel."""
    if not isinstance(case.body, dict):
        return
    path = case.path_parameters or {}
    funnel = path.get("funnel_id")
    if "deal_id" in path and _is_uuid(case.body.get("stage_id")):
        deal = httpx.get(f"{base_url}/api/v1/deals/{path['deal_id']}", headers=headers, timeout=30)
        funnel = deal.json()["funnel_id"] if deal.status_code == 200 else None
    if funnel is None:
        return
    found = httpx.get(f"{base_url}/api/v1/funnels/{funnel}", headers=headers, timeout=30)
    if found.status_code != 200:
        return
    stages = [stage["id"] for stage in found.json()["stages"]]
    if isinstance(case.body.get("stage_ids"), list):
        case.body["stage_ids"] = stages[::-1]
    elif "deal_id" in path and stages:
        case.body["stage_id"] = stages[-1]


def _call(case: Any, base_url: str, company: Company, role: str) -> None:
    _with_company_objects(case, company)
    headers = {"Authorization": f"Bearer {company.keys[role]}"}
    _stages_as_they_stand(case, base_url, headers)
    response = case.call(base_url=base_url, headers=headers, timeout=30)
    SEEN[response.status_code] += 1
    if _positive(case):
        company.outcomes[(role, f"{case.method} {case.path}")][response.status_code] += 1
    # a sparse fieldset (?fields=) answers only the fields named, which the schema does not model
    sparse = "fields" in (case.query or {})
    checks = [not_a_server_error] if sparse else [not_a_server_error, response_schema_conformance]
    case.validate_response(response, checks=checks)


@SCHEMA.parametrize()
@FUZZ
def test_no_route_fails_or_breaks_its_schema(case, base_url: str, company: Company) -> None:  # type: ignore[no-untyped-def]
    _call(case, base_url, company, "admin")


@SCHEMA.parametrize()
@FUZZ
def test_no_route_fails_an_agent_or_breaks_its_schema(  # type: ignore[no-untyped-def]
    case, base_url: str, company: Company
) -> None:
    _call(case, base_url, company, "agent")


def test_valid_calls_succeed_on_a_full_company() -> None:
    """Each operation answered 2xx to a share of its valid calls: the fuzzing reached the code
    behind authentication, validation and the 404. Left out of the share: calls the role may not
    make (403), calls the company's state refuses (409: a funnel holding open deals) and, for
    the agent, objects it does not see (404: an agent sees the conversations assigned to it, and
    the admin's calls reassign them)."""
    if not COMPANY:
        pytest.skip("the fuzzing tests did not run")
    outcomes = COMPANY[0].outcomes
    failing = {}
    for (role, operation), statuses in sorted(outcomes.items()):
        left_out = (403, 409, 404) if role == "agent" else (403, 409)
        allowed = statuses.total() - sum(statuses[status] for status in left_out)
        succeeded = sum(n for status, n in statuses.items() if 200 <= status < 300)
        if operation in BEYOND_THE_SCHEMA or not allowed or (statuses[403] and not succeeded):
            continue  # never 2xx by design, or the role may not call it
        if succeeded < max(1, math.ceil(MIN_SHARE * allowed)):
            failing[f"{role} {operation}"] = dict(statuses)
    for (role, operation), statuses in sorted(outcomes.items()):
        print(f"valid calls, {role} {operation}: {dict(sorted(statuses.items()))}")
    assert not failing, f"operations below {MIN_SHARE:.0%} of valid calls answered 2xx: {failing}"
    assert {role for role, _ in outcomes} == {"admin", "agent"}
