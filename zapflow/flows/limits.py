"""The bounds on what a tenant's flow can make zapflow do: how big a document, an expression, a
pattern and a value may be, and how many steps a run or a simulation takes. Flows are tenant
input running in shared processes (the API for simulations, the worker for runs): each bound keeps
one tenant's flow from taking the time or memory of the others.

``check_value`` is the one place a value's size is judged: after every evaluation of an
expression, on what an ``http_request`` saves, and on the variables a run or simulation is given.
"""

from __future__ import annotations

import math
from typing import Any

# documents (the /flows bodies, JSON or YAML)
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DOCUMENT_DEPTH = 32  # nested mappings and lists
MAX_NODES = 500
# expressions and regex triggers
MAX_EXPRESSION_LENGTH = 2_000
MAX_EXPRESSION_DEPTH = 64  # of the syntax tree: parentheses, lists, calls, chained operators
MAX_PATTERN_LENGTH = 1_000
MAX_PATTERN_PROGRAM_BYTES = 1 << 20  # re2's memory for one compiled pattern
MAX_KEYWORDS = 100  # of one keyword trigger
MAX_KEYWORD_LENGTH = 100
MAX_MATCHED_TEXT = 4_096  # a WhatsApp text's own limit: longer messages are matched on this head
# values (a variable, an evaluation's result)
MAX_TEXT = 16_384  # characters
MAX_ITEMS = 1_000  # entries of one list or mapping
MAX_VALUE_SIZE = 65_536  # characters and entries of a value, all levels together
MAX_VALUE_DEPTH = 16
MAX_DIGITS = 30  # a number's magnitude stays below 10**MAX_DIGITS
MAX_NUMBER = 10**MAX_DIGITS
# runs and simulations
MAX_STEPS_PER_ACTIVATION = 1_000  # steps between two rests (a wait or an ask)
MAX_RUN_STEPS = 5_000  # a run's whole life: keeps its Temporal history far below the server's cap
MAX_SIMULATION_STEPS = 1_000
SIMULATION_SECONDS = 10.0
MAX_TRANSCRIPT = 500  # entries a run keeps (the latest)
TRANSCRIPT_TEXT = 500  # characters of a value shown in a transcript entry


class ValueTooLarge(ValueError):
    """A value is beyond one of the bounds above."""


def check_number(value: float | int) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueTooLarge("the number is not finite")
    if not -MAX_NUMBER < value < MAX_NUMBER:
        raise ValueTooLarge(f"a number has at most {MAX_DIGITS} digits")


def check_value(value: Any) -> None:
    """``ValueTooLarge`` unless ``value`` (a JSON-like value) is within the bounds. Iterative and
    stopping at the first excess, so judging a huge value costs no more than the bound."""
    budget = MAX_VALUE_SIZE
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int | float):
            check_number(item)
            continue
        if isinstance(item, str):
            if len(item) > MAX_TEXT:
                raise ValueTooLarge(f"a text has at most {MAX_TEXT} characters")
            budget -= len(item)
        elif isinstance(item, list | tuple | dict):
            if depth >= MAX_VALUE_DEPTH:
                raise ValueTooLarge(f"a value nests at most {MAX_VALUE_DEPTH} levels")
            if len(item) > MAX_ITEMS:
                raise ValueTooLarge(f"a list or mapping has at most {MAX_ITEMS} entries")
            budget -= len(item)
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
            todo.extend((child, depth + 1) for child in children)
        if budget < 0:
            raise ValueTooLarge(f"a value holds at most {MAX_VALUE_SIZE} characters and entries")
