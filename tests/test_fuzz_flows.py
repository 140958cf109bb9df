"""The flow language's loader and validator under hostile documents (tests/fuzz.py): the example
flow with parts replaced by wrong types, odd strings, broken expressions and templates, deep
nesting, or removed; and arbitrary text. They answer with the flow (valid) or ``InvalidFlow`` /
``ValueError`` naming the problem, never another exception (which the API would turn into a 500).

And the evaluation: any expression built from the language's parts, on variables at the edges
of the bounds, gives a bounded value or ``ExpressionError`` (the only error a run turns into a
node's failure) within a memory bound; a loop of such expressions, simulated, always ends."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import DERANDOMIZE, JSON, SCALARS, SCALE, mutations
from zapflow.flows import limits
from zapflow.flows.expressions import ExpressionError, evaluate_text
from zapflow.flows.language import FlowDefinition, load_document
from zapflow.flows.simulate import simulate
from zapflow.flows.validation import InvalidFlow, parse_flow

EXAMPLE = load_document(
    (Path(__file__).resolve().parents[1] / "examples/flows/lead_qualification.yaml").read_text()
)
EXPRESSIONS = st.sampled_from(
    [
        "{{",
        "}}",
        "{{name",
        "{{ name }}{{",
        "budget >= ",
        "((((((((((1",
        "1 / 0",
        "a.b.c.d",
        "len(",
        "'unterminated",
        "name == 'x' and or",
        "{{" + "(" * 500 + "}}",
        "9" * 400,
        "@#$%^&*",
    ]
)
FUZZ = settings(
    max_examples=200 * SCALE,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)


@FUZZ
@given(st.one_of(mutations(EXAMPLE), JSON, st.builds(dict)))
def test_the_validator_names_what_is_wrong_with_any_document(document: Any) -> None:
    if not isinstance(document, dict):
        return  # the API's body model and load_document take mappings only
    try:
        parse_flow(document)
    except InvalidFlow as exc:
        assert exc.issues and all(issue.message for issue in exc.issues)


def _with_expressions(document: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """Every string of every node replaced, in turn, by one of ``texts``."""
    nodes = []
    for i, node in enumerate(document["nodes"]):
        changed = {
            k: texts[(i + j) % len(texts)] if isinstance(v, str) and k not in ("id", "type") else v
            for j, (k, v) in enumerate(node.items())
        }
        nodes.append(changed)
    return {**document, "nodes": nodes}


@FUZZ
@given(st.lists(EXPRESSIONS, min_size=1, max_size=5))
def test_broken_expressions_and_templates_are_named(texts: list[str]) -> None:
    try:
        parse_flow(_with_expressions(EXAMPLE, texts))
    except InvalidFlow as exc:
        assert exc.issues


@FUZZ
@given(st.text(max_size=2_000))
def test_the_loader_reads_any_text_or_says_it_cannot(text: str) -> None:
    try:
        load_document(text)
    except ValueError as exc:
        assert str(exc)


# --- evaluation: any expression on any bounded scope -----------------------------------------

# what a run's variables can hold: the bounds' edges, and the kinds a reply or a response brings
EDGES: list[Any] = [
    "x" * limits.MAX_TEXT,
    10**limits.MAX_DIGITS - 1,
    -(10**limits.MAX_DIGITS - 1),
    1e29,
    0,
    "1.500,50",
    "9" * 40,
    ["a"] * 500,
    {"k": [1, 2, {"k": "v"}]},
]
HOSTILE_VALUES = st.one_of(
    SCALARS,
    st.integers(min_value=0, max_value=len(EDGES) - 1).map(EDGES.__getitem__),
    st.lists(SCALARS, max_size=20),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=5),
)
NAMES = ["a", "b", "s", "contact.name", "contact.custom_fields.k", "missing", "a.0.k"]
LITERALS = st.one_of(
    st.integers(min_value=0, max_value=10**30).map(str),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.text(max_size=30).map(lambda t: "'" + t.replace("\\", "").replace("'", "") + "'"),
    st.sampled_from(["true", "false", "null", "[]", "[1, 'a', null]"]),
    st.sampled_from(NAMES),
)
OPERATORS = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in", "contains", "and",
             "or"]  # fmt: skip
FUNCTION_NAMES = ["lower", "upper", "len", "number", "text", "empty"]


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"-{e}"),
        st.tuples(st.sampled_from(FUNCTION_NAMES), st.lists(inner, max_size=2)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"  # 0 or 2 arguments: refused when parsed
        ),
        st.lists(inner, max_size=4).map(lambda items: f"[{', '.join(items)}]"),
    )


def _bounded(scope: dict[str, Any]) -> bool:
    """A run's variables always are (``Engine._store``); the fuzzer keeps to such scopes."""
    try:
        limits.check_value(scope)
    except limits.ValueTooLarge:
        return False
    return True


EXPRESSION_TEXTS = st.recursive(LITERALS, _combine, max_leaves=40)
SCOPES = st.fixed_dictionaries(
    {"a": HOSTILE_VALUES, "b": HOSTILE_VALUES, "s": HOSTILE_VALUES},
).filter(_bounded)
EVALUATION_MEMORY = 8 * 1024 * 1024  # bytes: far above what bounded values need
SIMULATION_MEMORY = 64 * 1024 * 1024  # 1,000 steps' transcript and values, at most


@FUZZ
@given(EXPRESSION_TEXTS, SCOPES)
def test_any_expression_evaluates_to_a_bounded_value_or_an_expression_error(
    source: str, scope: dict[str, Any]
) -> None:
    scope = {**scope, "contact": {"name": "Ana", "custom_fields": {"k": "v"}}}
    tracemalloc.start()
    try:
        value = evaluate_text(source, scope)
    except ExpressionError as exc:
        assert str(exc)
    else:
        limits.check_value(value)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < EVALUATION_MEMORY


@settings(FUZZ, max_examples=50 * SCALE)  # each runs up to 1,000 steps
@given(st.lists(EXPRESSION_TEXTS, min_size=1, max_size=3), SCOPES, st.booleans())
def test_a_simulated_loop_of_any_expressions_ends_bounded(
    sources: list[str], scope: dict[str, Any], rests: bool
) -> None:
    """set_variable nodes of fuzzed expressions in a loop (resting on a wait, or not: a version
    stored before the loop rule) always end: completed, or failed at a node or a step limit."""
    nodes: list[dict[str, Any]] = [
        {"id": f"n{i}", "type": "set_variable", "variable": "ab"[i % 2], "value": source,
         "next": f"n{i + 1}"}
        for i, source in enumerate(sources)
    ]  # fmt: skip
    nodes.append({"id": f"n{len(sources)}", "type": "wait" if rests else "goto",
                  "duration": "1s", "next": "n0", "target": "n0"})  # fmt: skip
    if rests:
        del nodes[-1]["target"]
    else:
        del nodes[-1]["duration"], nodes[-1]["next"]
    flow = FlowDefinition.model_validate(
        {"name": "fuzz", "variables": scope, "start": "n0", "nodes": nodes}
    )
    tracemalloc.start()
    try:
        result = asyncio.run(simulate(flow, []))
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert result.status == "failed"  # a loop: only a failure or the step limit ends it
    assert result.error
    assert len(result.transcript) <= limits.MAX_TRANSCRIPT
    limits.check_value(result.variables)
    assert peak < SIMULATION_MEMORY
