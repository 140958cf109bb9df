"""Readiness: Postgres, Redis and Temporal reachable, checked at most once per ``FRESH_SECONDS``
per process however many probes arrive (a /readyz flood costs no queries, and concurrent probes
share the one check under way)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from zapflow.api.state import AppState

CHECK_TIMEOUT_SECONDS = 3.0
FRESH_SECONDS = 1.0


async def _postgres(state: AppState) -> None:
    async with state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis(state: AppState) -> None:
    await state.redis.ping()


async def _temporal(state: AppState) -> None:
    await state.temporal.check_health()


CHECKS: dict[str, Callable[[AppState], Awaitable[None]]] = {
    "postgres": _postgres,
    "redis": _redis,
    "temporal": _temporal,
}


async def _run_check(check: Callable[[AppState], Awaitable[None]], state: AppState) -> str:
    try:
        await asyncio.wait_for(check(state), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}".strip().rstrip(":")
    return "ok"


async def _check_all(state: AppState) -> dict[str, str]:
    results = await asyncio.gather(*(_run_check(check, state) for check in CHECKS.values()))
    return dict(zip(CHECKS, results, strict=True))


class Readiness:
    def __init__(self) -> None:
        self._checked_at = float("-inf")
        self._check: asyncio.Future[dict[str, str]] | None = None

    async def components(self, state: AppState) -> dict[str, str]:
        """Each component's result: "ok" or the error, no older than ``FRESH_SECONDS``."""
        if self._check is None or (
            self._check.done() and time.monotonic() - self._checked_at > FRESH_SECONDS
        ):
            self._checked_at = time.monotonic()
            self._check = asyncio.ensure_future(_check_all(state))
        # shielded: a probe that gives up does not cancel the check the others wait for
        return await asyncio.shield(self._check)
