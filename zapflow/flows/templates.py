"""``{{variable}}`` / ``{{contact.name}}`` interpolation of the texts a flow sends."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from zapflow.flows.expressions import lookup

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")


def render(template: str, scope: Mapping[str, Any]) -> str:
    """The template with each placeholder replaced by its value (a missing one by nothing)."""

    def value(match: re.Match[str]) -> str:
        found = lookup(scope, match.group(1))
        if found is None:
            return ""
        if isinstance(found, float) and found.is_integer():
            return str(int(found))
        return str(found)

    return PLACEHOLDER.sub(value, template)


def names(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))
