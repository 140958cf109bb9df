"""Field rules the schemas of several domains share."""

from __future__ import annotations

from typing import TypeVar

from pydantic import AfterValidator

T = TypeVar("T")


def _refuse_null(value: T | None) -> T:
    if value is None:
        raise ValueError("may be omitted but not null")
    return value


# For PATCH bodies: a field left out keeps its value (validators skip defaults); an explicit
# ``null`` is a 422 naming the field instead of reaching a NOT NULL column.
NotNull = AfterValidator(_refuse_null)
