"""Hypothesis strategies for hostile webhook bodies: arbitrary JSON, and the providers' documented
payloads with parts replaced by wrong types, huge or odd strings (emoji, right-to-left, NUL,
), numbers as strings and deep nesting, or removed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.whatsapp.payloads import HERE, load

# examples per property: 1 in make test, more with ZAPFLOW_FUZZ_SCALE (make test-faults: 10)
SCALE = int(os.environ.get("ZAPFLOW_FUZZ_SCALE", "1"))
# make test replays the same examples on every run (a CI run never fails on a new discovery);
# make test-faults explores new ones each time
DERANDOMIZE = SCALE == 1
CLOUD_SAMPLES = sorted(p.stem for p in Path(HERE).glob("cloud_*.json"))
EVOLUTION_SAMPLES = sorted(p.stem for p in Path(HERE).glob("evolution_*.json"))

ODD_TEXT = st.sampled_from(
    [
        "",
        "😀👨‍👩‍👧‍👦🇧🇷",
        "مرحبا \u202e evil \u202c",
        "שלום",
        "\u0000",
        "a\u0000b",
        "\ufeff",
        "null",
        "123",
        "-1e309",
        "9" * 40,
        "x" * 70_000,
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "@s.whatsapp.net",
        "../../etc/passwd",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    # what a JSON body can carry through orjson: 64-bit integers, finite floats
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    ODD_TEXT,
    st.integers().map(str),  # numbers as strings
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


REPLACEMENTS = st.one_of(JSON, st.integers(min_value=10, max_value=400).map(deep))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document: dict keys and list indexes, depth first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def replaced(document: Any, path: tuple[Any, ...], new: Any, delete: bool = False) -> Any:
    """``document`` with the value at ``path`` replaced by ``new`` (or removed, or added)."""
    if not path:
        return new
    head, *rest = path
    copy = dict(document) if isinstance(document, dict) else list(document)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = replaced(document[head], tuple(rest), new, delete) if rest else new
    return copy


@st.composite
def mutated(draw: st.DrawFn, samples: list[str]) -> Any:
    """A documented payload with one to three places replaced or removed."""
    return draw(mutations(load(draw(st.sampled_from(samples)))))


@st.composite
def mutations(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with one to three places replaced (by ``REPLACEMENTS``) or removed."""
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(document)))
        delete = bool(path) and draw(st.booleans())
        document = replaced(document, path, draw(REPLACEMENTS), delete)
    return document


def bodies(samples: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(mutated(samples), mutated(samples), JSON)
