"""Flows are tenant input, bounded (issue 17, items 2-4): regex triggers run on RE2 and a
pathological one stalls no one; flow documents are read only after the key is checked, without
YAML anchors or aliases, within a size; expressions, runs and simulations are bounded, and every
evaluation error fails its node, in a simulation as in a real run, never a workflow task or a 500.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from tests.fixtures.app import Tenant
from tests.fixtures.provider_server import ProviderServer
from tests.fixtures.traffic import eventually, ok_json
from tests.test_flows_runs import ended, new_customer, published, start_run
from zapflow.db import SessionFactory, transaction
from zapflow.flows import limits
from zapflow.flows.expressions import ExpressionError, evaluate_text, parse
from zapflow.flows.language import DocumentRefused, load_document
from zapflow.flows.validation import InvalidFlow, parse_flow
from zapflow.models import Flow, FlowVersion
from zapflow.services.flow_triggers import _matches

pytestmark = pytest.mark.usefixtures("worker")

# a 9-level "billion laughs": 9**9 strings once its aliases are expanded
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
SELF_ALIAS = "name: &x [*x]\nstart: a\nnodes: []\n"


def flow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "bounded", "start": nodes[0]["id"], "nodes": list(nodes), **extra}


def doubling(initial: str = "x") -> dict[str, Any]:
    """set_variable s = s + s, resting on a wait between doublings: valid, and it would double
    for ever."""
    return flow(
        {"id": "grow", "type": "set_variable", "variable": "s", "value": "s + s", "next": "rest"},
        {"id": "rest", "type": "wait", "duration": "1s", "next": "grow"},
        variables={"s": initial},
    )


def issues(document: dict[str, Any]) -> set[tuple[str | None, str, str]]:
    with pytest.raises(InvalidFlow) as raised:
        parse_flow(document)
    return {(i.node_id, i.field, i.code) for i in raised.value.issues}


# --- expressions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("lower()", "lower() takes 1 argument, got 0"),
        ("upper(a, b)", "upper() takes 1 argument, got 2"),
        ("(" * 70 + "1" + ")" * 70, "nested more than 64"),
        ("not " * 70 + "true", "nested more than 64"),
        ("1" + " + 1" * 70, "nested more than 64"),
        ("[" * 70 + "]" * 70, "nested more than 64"),
        ("9" * 31, "at most 30 digits"),
        ("a" * 2_001, "longer than 2000"),
    ],
)
def test_an_expression_beyond_the_bounds_is_refused_when_parsed(source: str, says: str) -> None:
    with pytest.raises(ExpressionError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse(source)


def test_a_flow_breaking_an_expression_bound_names_its_node_and_field() -> None:
    document = flow(
        {"id": "low", "type": "set_variable", "variable": "v", "value": "lower()", "next": "deep"},
        {"id": "deep", "type": "condition", "branches": [{"when": "(" * 70 + "1" + ")" * 70,
         "next": "end"}], "default": "end"},
        {"id": "end", "type": "end"},
    )  # fmt: skip
    assert issues(document) >= {
        ("low", "value", "invalid_expression"),
        ("deep", "branches.0.when", "invalid_expression"),
    }


@pytest.mark.parametrize(
    ("source", "scope"),
    [
        ("s + s", {"s": "x" * 10_000}),  # a text over 16 K characters
        ("n * n", {"n": 10**20}),  # over 30 digits
        ("n * 1.5", {"n": 10**400}),  # OverflowError
        ("text(n)", {"n": 10**5_000}),  # ValueError: over Python's 4,300 digits
        ("1 + n", {"n": float("inf")}),
        ("- s", {"s": "abc" * 1_000}),
    ],
)
def test_every_evaluation_error_is_an_expression_error(source: str, scope: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError) as raised:
        evaluate_text(source, scope)
    assert len(str(raised.value)) < 200  # a value is shown by its start only


def test_in_with_a_value_a_mapping_cannot_hold_is_false() -> None:
    assert evaluate_text("l in d", {"l": [1], "d": {"a": 1}}) is False
    assert evaluate_text("d contains l", {"l": [1], "d": {"a": 1}}) is False


# --- regex and keyword triggers ---------------------------------------------------------------


@pytest.mark.timeout(60)  # Python's re takes hours on this; RE2 microseconds
def test_a_catastrophic_pattern_matches_in_linear_time() -> None:
    trigger = {"type": "regex", "pattern": "(a+)+$"}
    parse_flow(flow({"id": "end", "type": "end"}, triggers=[trigger]))
    assert not _matches(trigger, ["a" * 4_000 + "!"], False)  # a WhatsApp text is at most 4,096
    assert _matches(trigger, ["a" * 100], False)


def test_a_pattern_re2_does_not_run_is_refused_naming_the_trigger() -> None:
    for pattern in ["(a)\\1", "(?<=a)b", "(?!x)y", "a" * 1_001, "((a{100}){100}){100}"]:
        document = flow({"id": "end", "type": "end"}, triggers=[{"type": "regex", "pattern": "x"},
                        {"type": "regex", "pattern": pattern}])  # fmt: skip
        assert issues(document) == {(None, "triggers.1.pattern", "invalid_trigger")}, pattern
    too_many = [{"type": "keyword", "keywords": [f"w{i}" for i in range(101)]}]
    assert issues(flow({"id": "end", "type": "end"}, triggers=too_many)) == {
        (None, "triggers.0.keywords", "invalid_trigger")
    }


def test_keywords_match_whole_words_in_any_case() -> None:
    trigger = {"type": "keyword", "keywords": ["ação", "c++", " "]}
    matched = ["Quero AÇÃO já", "ação", "I like c++!", "(c++)"]
    unmatched = ["reação", "c++x", "xc++", "acao", ""]
    assert [_matches(trigger, [t], False) for t in matched] == [True] * len(matched)
    assert [_matches(trigger, [t], False) for t in unmatched] == [False] * len(unmatched)


async def test_a_pathological_regex_tenant_does_not_hold_up_another_tenants_messages(
    tenant: Tenant, other_tenant: Tenant, provider_server: ProviderServer
) -> None:
    """Tenant A's trigger is ``(a+)+$`` (exponential for a backtracking engine) and its flow
    doubles a text until a bound stops it; while A's customer sends what would stall a
    backtracking engine, B's customer's messages are stored, and so are all of A's."""
    slow, conversation = await new_customer(tenant, provider_server)
    pathological = {**doubling("x" * 1_000), "triggers": [
        {"type": "regex", "pattern": "(a+)+$"}]}  # fmt: skip
    flow_id = await published(tenant.client, pathological)
    await slow.say("a" * 4_000 + "!")
    await slow.say("aaaa")  # matches: starts the doubling run

    _, other = await new_customer(other_tenant, provider_server)  # stored, or this fails
    assert await _texts(other_tenant.client, other["id"], 1) == ["oi"]
    assert await _texts(tenant.client, conversation["id"], 3) == ["oi", "a" * 4_000 + "!", "aaaa"]
    runs = (await tenant.client.get(f"/api/v1/flows/{flow_id}/runs")).json()["data"]
    run = await ended(tenant.client, runs[0]["id"], within=60)
    assert run["status"] == "failed"
    assert "a text has at most 16384 characters" in run["error"]


async def _texts(client: httpx.AsyncClient, conversation_id: str, count: int) -> list[str]:
    async def listed() -> list[str]:
        page = await client.get(f"/api/v1/conversations/{conversation_id}/messages?limit=100")
        return [m["body"] for m in reversed(ok_json(page)["data"])]

    return await eventually(listed, lambda found: len(found) >= count, within=60)


# --- documents --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [BOMB, SELF_ALIAS, "a: &x 1\nb: 2\n", "a: " + "[" * 40 + "]" * 40, "x: {" * 40 + "}" * 40],
)
def test_the_loader_refuses_anchors_aliases_and_deep_nesting(text: str) -> None:
    with pytest.raises(DocumentRefused):
        load_document(text)


async def test_flow_documents_are_read_after_the_key_and_within_bounds(
    tenant: Tenant, api_url: str
) -> None:
    yaml_type = {"content-type": "application/yaml"}
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as anonymous:
        for body in [BOMB, SELF_ALIAS, "{", "a: \x00"]:
            response = await anonymous.post("/api/v1/flows", content=body, headers=yaml_type)
            assert response.status_code == 401, (body[:20], response.text)
        huge = "x" * (limits.MAX_DOCUMENT_BYTES + 1)
        response = await anonymous.post("/api/v1/flows", content=huge, headers=yaml_type)
        assert response.status_code == 401

    client = tenant.client
    created = await client.post("/api/v1/flows", json=flow({"id": "end", "type": "end"}))
    assert created.status_code == 201, created.text
    for path in ["/api/v1/flows", f"/api/v1/flows/{created.json()['id']}"]:
        method = client.post if path == "/api/v1/flows" else client.put
        for body, status, says in [
            (BOMB, 400, "anchors and aliases"),
            (SELF_ALIAS, 400, "anchors and aliases"),
            ("x: " + "[" * 40 + "]" * 40, 400, "nested"),
            ("a: \x00", 422, "body: not valid YAML"),
            ("x: 18446744073709551616", 422, "64-bit"),
            ("name: x\nstart: a\nnodes: [" + "{id: a, type: end}, " * 20_000 + "]", 413, "bytes"),
        ]:
            response = await method(path, content=body, headers=yaml_type)
            assert response.status_code == status, (body[:20], response.text)
            assert says in response.json()["error"]["message"]
        deep_json = '{"name": "x", "variables": {"v": ' + "[" * 40 + "]" * 40 + "}}"
        json_type = {"content-type": "application/json"}
        response = await method(path, content=deep_json, headers=json_type)
        assert response.status_code == 400, response.text


# --- simulations ------------------------------------------------------------------------------


async def test_simulations_are_bounded_and_never_a_500(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    client = tenant.client
    created = await client.post("/api/v1/flows", json=doubling())
    assert created.status_code == 201, created.text
    simulate = f"/api/v1/flows/{created.json()['id']}/simulate"

    doubled = await client.post(simulate, json={"replies": []})
    assert doubled.status_code == 200, doubled.text
    result = doubled.json()
    assert result["status"] == "failed"
    assert result["error"].startswith("grow: expression 's + s': a text has at most 16384")
    assert len(result["variables"]["s"]) == 2**14

    counting = flow(
        {"id": "count", "type": "set_variable", "variable": "n", "value": "n + 1", "next": "rest"},
        {"id": "rest", "type": "wait", "duration": "1s", "next": "count"},
        variables={"n": 0},
    )
    loop = await client.post("/api/v1/flows", json=counting)
    looped = await client.post(f"/api/v1/flows/{loop.json()['id']}/simulate", json={})
    assert looped.status_code == 200, looped.text
    assert looped.json()["status"] == "failed"
    assert "stopped after 1000 steps" in looped.json()["error"]
    assert len(looped.json()["transcript"]) == limits.MAX_TRANSCRIPT

    for body, field in [
        ({"variables": {"n": 10**40}}, "variables"),
        ({"replies": ["x" * 20_000]}, "replies"),
        ({"contact": {"name": "x" * 20_000}}, "contact"),
    ]:
        refused = await client.post(simulate, json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == f"body.{field}"

    # a draft saved before arity was checked (written here behind the API's back) is refused
    # with its node and field, as the editor's drafts with issues are: a 422, not a 500
    stored = flow(
        {"id": "low", "type": "set_variable", "variable": "v", "value": "lower()", "next": "end"},
        {"id": "end", "type": "end"},
        variables={"v": None},
    )
    async with transaction(sessions) as session:
        await session.execute(
            update(Flow)
            .where(col(Flow.id) == uuid.UUID(created.json()["id"]))
            .values(draft_definition=stored)
        )
    answered = await client.post(simulate, json={})
    assert answered.status_code == 422, answered.text
    [issue] = answered.json()["error"]["details"]
    assert (issue["node_id"], issue["field"], issue["code"]) == (
        "low",
        "value",
        "invalid_expression",
    )
    assert issue["message"].startswith("lower() takes 1 argument")


async def test_flows_breaking_a_bound_are_refused_with_their_node_and_field(
    tenant: Tenant,
) -> None:
    document = flow(
        {"id": "low", "type": "set_variable", "variable": "v", "value": "lower()", "next": "big"},
        {"id": "big", "type": "set_variable", "variable": "v", "value": "9" * 40, "next": "end"},
        {"id": "end", "type": "end"},
        triggers=[{"type": "regex", "pattern": "(?<=a)b"}],
    )
    response = await tenant.client.post("/api/v1/flows", json=document)
    assert response.status_code == 422, response.text
    found = {(d["node_id"], d["field"]) for d in response.json()["error"]["details"]}
    assert found == {("low", "value"), ("big", "value"), (None, "triggers.0.pattern")}


# --- real runs --------------------------------------------------------------------------------


async def test_an_evaluation_error_takes_the_nodes_failure_branch_in_a_run(
    tenant: Tenant, provider_server: ProviderServer
) -> None:
    await tenant.client.post("/api/v1/funnels", json={"name": "Sales", "stages": [{"name": "N"}]})
    document = flow(
        {"id": "deal", "type": "create_deal", "title": "Big", "funnel": "Sales",
         "value": "n * n", "next": "end", "on_failure": "sorry"},
        {"id": "sorry", "type": "send_text", "text": "Sorry!", "next": "end"},
        {"id": "end", "type": "end"},
        variables={"n": 10**18},
    )  # fmt: skip
    flow_id = await published(tenant.client, document)
    customer, conversation = await new_customer(tenant, provider_server)
    run = await ended(
        tenant.client, (await start_run(tenant.client, flow_id, conversation["contact_id"]))["id"]
    )
    assert run["status"] == "completed", run
    [failure] = [t for t in run["transcript"] if t["event"] == "failed"]
    assert (failure["node"], failure["to"]) == ("deal", "sorry")
    assert "at most 30 digits" in failure["error"]
    assert await customer.wait_for(1) == ["Sorry!"]


async def test_a_run_hitting_a_step_limit_fails_with_a_dead_letter_and_frees_its_conversation(
    tenant: Tenant, provider_server: ProviderServer, sessions: SessionFactory
) -> None:
    """A version stored with a loop that never rests (written here behind the validator, as an
    older release could have stored one) stops at the step limit instead of spinning its
    workflow task for ever; the conversation then runs flows again."""
    hello = flow(
        {"id": "hello", "type": "send_text", "text": "Hello!", "next": "end"},
        {"id": "end", "type": "end"},
    )
    flow_id = await published(tenant.client, hello)
    spinning = flow(
        {"id": "count", "type": "set_variable", "variable": "n", "value": "n + 1", "next": "again"},
        {"id": "again", "type": "goto", "target": "count"},
        variables={"n": 0},
    )
    async with transaction(sessions) as session:
        await session.execute(
            update(FlowVersion)
            .where(col(FlowVersion.flow_id) == uuid.UUID(flow_id))
            .values(definition=spinning)
        )
    customer, conversation = await new_customer(tenant, provider_server)
    run = await ended(
        tenant.client, (await start_run(tenant.client, flow_id, conversation["contact_id"]))["id"]
    )
    assert run["status"] == "failed"
    assert run["error"].endswith("stopped after 1000 steps without a wait or an ask")
    letters = (await tenant.client.get("/api/v1/ops/dead-letters")).json()["data"]
    assert [(d["kind"], d["reference"]["flow_run_id"]) for d in letters] == [
        ("flow_node", run["id"])
    ]

    again = await published(tenant.client, hello)
    second = await ended(
        tenant.client, (await start_run(tenant.client, again, conversation["contact_id"]))["id"]
    )
    assert second["status"] == "completed", second
    assert await customer.wait_for(1) == ["Hello!"]
