"""Webhook bodies in the providers' documented formats, one file per case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).parent


def raw(name: str) -> bytes:
    return (HERE / f"{name}.json").read_bytes()


def load(name: str) -> Any:
    return orjson.loads(raw(name))
