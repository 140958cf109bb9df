"""The flow language without the stack: parsing, one test per validation rule, the expression
language, interpolation, answer checks, the simulator and the diagram."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from zapflow.flows import expressions
from zapflow.flows.engine import check_answer
from zapflow.flows.graph import mermaid
from zapflow.flows.language import Ask, load_document
from zapflow.flows.simulate import simulate
from zapflow.flows.templates import render
from zapflow.flows.validation import InvalidFlow, parse_flow

SAMPLE = Path(__file__).parent.parent / "examples" / "flows" / "lead_qualification.yaml"


def sample() -> dict[str, Any]:
    return load_document(SAMPLE.read_text())


def minimal(*nodes: dict[str, Any], start: str = "a", **extra: Any) -> dict[str, Any]:
    return {"name": "t", "start": start, "nodes": list(nodes), **extra}


def issues_of(document: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    with pytest.raises(InvalidFlow) as caught:
        parse_flow(document)
    return [(i.node_id, i.field, i.code) for i in caught.value.issues]


def test_the_sample_flow_is_valid_yaml_and_json_alike() -> None:
    import orjson

    flow = parse_flow(sample())
    assert flow.start == "greeting"
    assert parse_flow(load_document(orjson.dumps(sample()).decode())) == flow


def test_unknown_node_ids_in_edges_are_named() -> None:
    document = minimal(
        {"id": "a", "type": "send_text", "text": "hi", "next": "nowhere"},
        {"id": "b", "type": "end"},
    )
    assert ("a", "next", "unknown_node") in issues_of(document)


def test_an_unknown_start_is_named() -> None:
    document = minimal({"id": "a", "type": "end"}, start="zzz")
    assert (None, "start", "unknown_node") in issues_of(document)


def test_unreachable_nodes_are_named() -> None:
    document = minimal(
        {"id": "a", "type": "send_text", "text": "hi", "next": "z"},
        {"id": "orphan", "type": "send_text", "text": "never", "next": "z"},
        {"id": "z", "type": "end"},
    )
    assert issues_of(document) == [("orphan", "id", "unreachable")]


def test_nodes_with_no_way_out_that_are_not_end_are_named() -> None:
    document = minimal(
        {"id": "a", "type": "send_text", "text": "hi", "next": "c"},
        {"id": "c", "type": "condition", "branches": [{"when": "1 == 1", "next": "b"}]},
        {"id": "b", "type": "tag", "tag": "x"},
    )
    assert issues_of(document) == [("c", "default", "dead_end"), ("b", "next", "dead_end")]


def test_an_ask_timeout_needs_its_branch() -> None:
    document = minimal(
        {"id": "a", "type": "ask", "variable": "v", "timeout": "1h", "next": "z"},
        {"id": "z", "type": "end"},
    )
    assert issues_of(document) == [("a", "on_timeout", "dead_end")]


def test_loops_without_a_wait_or_ask_are_named() -> None:
    document = minimal(
        {"id": "a", "type": "send_text", "text": "hi", "next": "b"},
        {"id": "b", "type": "set_variable", "variable": "n", "value": "1", "next": "c"},
        {"id": "c", "type": "goto", "target": "a"},
    )
    assert issues_of(document) == [("a", "next", "loop_without_wait")]


def test_a_loop_with_an_ask_is_fine() -> None:
    document = minimal(
        {"id": "a", "type": "ask", "prompt": "again?", "variable": "v", "next": "c"},
        {"id": "c", "type": "condition", "branches": [{"when": "v == 'no'", "next": "z"}],
         "default": "a"},
        {"id": "z", "type": "end"},
    )  # fmt: skip
    assert parse_flow(document).start == "a"


def test_undefined_variables_are_named_with_their_field() -> None:
    document = minimal(
        {"id": "a", "type": "send_text", "text": "hi {{ nobody }} {{contact.name}}", "next": "c"},
        {"id": "c", "type": "condition", "branches": [{"when": "contact.shoe > 1", "next": "z"}],
         "default": "z"},
        {"id": "z", "type": "end"},
    )  # fmt: skip
    assert issues_of(document) == [
        ("a", "text", "undefined_variable"),
        ("c", "branches.0.when", "undefined_variable"),
    ]


def test_invalid_expressions_are_named_with_their_field() -> None:
    document = minimal(
        {"id": "a", "type": "set_variable", "variable": "x", "value": "1 +", "next": "c"},
        {"id": "c", "type": "condition", "branches": [{"when": "open('/etc/passwd')", "next": "z"}],
         "default": "z"},
        {"id": "z", "type": "end"},
    )  # fmt: skip
    assert issues_of(document) == [
        ("a", "value", "invalid_expression"),
        ("c", "branches.0.when", "invalid_expression"),
    ]


def test_duplicate_node_ids_are_named() -> None:
    document = minimal({"id": "a", "type": "goto", "target": "z"}, {"id": "z", "type": "end"},
                       {"id": "z", "type": "end"})  # fmt: skip
    assert ("z", "id", "duplicate_node") in issues_of(document)


def test_schema_errors_name_the_node_and_field() -> None:
    document = minimal(
        {"id": "a", "type": "ask", "variable": "v", "validation": "colour", "next": "z"},
        {"id": "z", "type": "teleport"},
    )
    found = issues_of(document)
    assert ("a", "validation", "schema") in found
    assert any(node == "z" and code == "schema" for node, _, code in found)


def test_expressions() -> None:
    scope = {"budget": 7000, "answer": "Sim", "contact": {"name": "Ana", "tags": ["vip"]}}
    cases = {
        "budget >= 5000 and contact.name != ''": True,
        "lower(answer) in ['sim', 'yes']": True,
        "'vip' in contact.tags": True,
        "(budget - 1000) * 2 / 4": 3000,
        "budget > 'abc'": False,  # different kinds never compare
        "missing == null": True,
        "not (budget < 10) or false": True,
        "contact.name + ' ' + 'Silva'": "Ana Silva",
        "number('R$ 1.500,50') > 1500": True,
    }
    for source, expected in cases.items():
        assert expressions.evaluate_text(source, scope) == expected, source
    for bad in ("__import__('os')", "1 +", "a.b(", "x ** 2", "budget ="):
        with pytest.raises(expressions.ExpressionError):
            expressions.evaluate_text(bad, scope)
    with pytest.raises(expressions.ExpressionError, match="division by zero"):
        expressions.evaluate_text("budget / 0", scope)


def test_interpolation() -> None:
    scope = {"n": 3.0, "contact": {"name": "Ana"}}
    assert render("Hi {{contact.name}}, {{ n }} items{{missing}}!", scope) == "Hi Ana, 3 items!"


@pytest.mark.parametrize(
    ("validation", "reply", "expected"),
    [
        ("number", "R$ 12.000,50", (True, 12000.5)),
        ("number", "lots", (False, None)),
        ("email", "Ana@Example.com", (True, "ana@example.com")),
        ("email", "ana@", (False, "ana@")),
        ("phone", "+55 (11) 99999-0000", (True, "+5511999990000")),
        ("date", "31/12/2026", (True, "2026-12-31")),
        ("date", "someday", (False, None)),
        ("choice", "2", (True, "Pro")),
        ("choice", "basic", (True, "Basic")),
        ("choice", "gold", (False, None)),
        ("text", "  ", (False, None)),
    ],
)
def test_answer_validation(validation: str, reply: str, expected: tuple[bool, Any]) -> None:
    node = Ask(id="q", type="ask", variable="v", validation=validation, choices=["Basic", "Pro"])  # type: ignore[arg-type]
    assert check_answer(node, reply) == expected


def test_a_typed_number_is_the_choice_at_that_place_in_the_list_sent() -> None:
    """Under numbered text (Evolution) "1" is the first choice sent, whatever the ask's order;
    runs from before (``numbered`` off) read it in the ask's list; other asks read the number."""
    offered = {"yes": "Sim", "no": "Não"}
    node = Ask(id="q", type="ask", variable="v", validation="choice", choices=["no", "yes"])  # type: ignore[arg-type]
    assert check_answer(node, "1", offered, numbered=True) == (True, "yes")
    assert check_answer(node, "2", offered, numbered=True) == (True, "no")
    assert check_answer(node, "3", offered, numbered=True) == (False, None)
    assert check_answer(node, "1", offered) == (True, "no")
    count = Ask(id="n", type="ask", variable="n", validation="number")  # type: ignore[arg-type]
    assert check_answer(count, "2", offered, numbered=True) == (True, 2)
    # digits int() does not read ("²" is isdigit() but no decimal) are no choice, not a crash
    assert check_answer(node, "²", offered, numbered=True) == (False, None)
    assert check_answer(node, "²", offered) == (False, None)


async def test_simulation_follows_replies_retries_and_timeouts() -> None:
    flow = parse_flow(sample())
    qualified = await simulate(flow, ["Maria", "lots", "12000"])
    assert qualified.status == "completed"
    assert qualified.variables["budget"] == 12000
    events = [(t["node"], t["event"]) for t in qualified.transcript]
    assert ("ask_budget", "invalid") in events and ("handoff", "handoff") in events
    assert [s["text"] for s in qualified.sent][-1].startswith("Thanks, Maria! A specialist")

    nurtured = await simulate(flow, ["Maria", "300"])
    assert ("follow_up_wait", "wait") in [(t["node"], t["event"]) for t in nurtured.transcript]
    assert nurtured.sent[-1]["text"].startswith("Hi Maria, here is the starter guide")

    silent = await simulate(flow, [None])
    assert [t["event"] for t in silent.transcript][-3:] == ["send", "tag", "end"]

    waiting = await simulate(flow, ["Maria"])
    assert (waiting.status, waiting.current_node) == ("waiting", "ask_budget")


async def test_a_step_without_failure_branch_fails_the_run() -> None:
    document = minimal(
        {"id": "a", "type": "set_variable", "variable": "x", "value": "1 / 0", "next": "z"},
        {"id": "z", "type": "end"},
    )
    result = await simulate(parse_flow(document), [])
    assert result.status == "failed"
    assert result.error and result.error.startswith("a: expression")


def test_mermaid_diagram() -> None:
    document = copy.deepcopy(sample())
    text = mermaid(parse_flow(document))
    assert text.startswith("flowchart TD\n")
    assert 'n_check_budget -->|"budget >= threshold"| n_deal_qualified' in text
    assert 'n_ask_name -->|"timeout"| n_nudge' in text
    assert 'n_done(["done: end"])' in text


def test_cli_simulates_a_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "zapflow.cli", "flows", "simulate", str(SAMPLE)]
    done = subprocess.run(
        [*command, "-r", "Maria", "-r", "300"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Hi Maria, here is the starter guide" in done.stdout
    assert "completed; variables:" in done.stdout
    timed_out = subprocess.run(
        [*command, "--reply", "!timeout", "--json"], capture_output=True, text=True, check=False
    )
    assert [t["event"] for t in json.loads(timed_out.stdout)["transcript"]][2] == "timeout"

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nstart: a\nnodes:\n  - {id: a, type: send_text, text: hi}\n")
    invalid = subprocess.run(
        [*command[:-1], str(broken)], capture_output=True, text=True, check=False
    )
    assert invalid.returncode == 2
    assert "a.next" in invalid.stderr and "dead_end" in invalid.stderr
