"""``{{variable}}`` / ``{{contact.name}}`` interpolation of the texts a flow sends. A rendered
text is bounded like any value a flow makes (``limits.MAX_TEXT``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from zapflow.flows import limits
from zapflow.flows.expressions import ExpressionError, lookup

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")


def render(template: str, scope: Mapping[str, Any]) -> str:
    """The template with each placeholder replaced by its value (a missing one by nothing);
    ``ExpressionError`` when the text would be longer than ``limits.MAX_TEXT``, found before it
    is built."""
    room = limits.MAX_TEXT - len(template)

    def value(match: re.Match[str]) -> str:
        nonlocal room
        found = lookup(scope, match.group(1))
        if found is None:
            text = ""
        elif isinstance(found, float) and found.is_integer():
            text = str(int(found))
        else:
            text = str(found)
        room -= len(text) - len(match.group(0))
        if room < 0:
            raise ExpressionError(f"the text would be longer than {limits.MAX_TEXT} characters")
        return text

    if room < 0:
        raise ExpressionError(f"the text is longer than {limits.MAX_TEXT} characters")
    return PLACEHOLDER.sub(value, template)


def names(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))
