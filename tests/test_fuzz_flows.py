"""The flow language's loader and validator under hostile documents (tests/fuzz.py): the example
flow with parts replaced by wrong types, odd strings, broken expressions and templates, deep
nesting, or removed; and arbitrary text. They answer with the flow (valid) or ``InvalidFlow`` /
``ValueError`` naming the problem, never another exception (which the API would turn into a 500)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import DERANDOMIZE, JSON, SCALE, mutations
from zapflow.flows.language import load_document
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
