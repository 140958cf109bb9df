"""Liveness (/healthz) and readiness (/readyz: Postgres, Redis and Temporal reachable)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from zapflow.api.deps import StateDep
from zapflow.api.state import AppState

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


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


def _ai_agent(state: AppState) -> str:
    if state.settings.ai_base_url is None:
        return "disabled: no model provider configured (ZAPFLOW_AI_BASE_URL)"
    return "available"


@router.get(
    "/readyz",
    summary="Readiness: Postgres, Redis and Temporal reachable",
    responses={503: {"description": "a component is unreachable; `failing` names it"}},
)
async def readyz(state: StateDep) -> JSONResponse:
    results = await asyncio.gather(*(_run_check(check, state) for check in CHECKS.values()))
    components = dict(zip(CHECKS, results, strict=True))
    failing = [name for name, result in components.items() if result != "ok"]
    body: dict[str, object] = {
        "status": "ready" if not failing else "unavailable",
        "components": components,
        # optional features: reported, never a reason to be unready
        "features": {"ai_agent": _ai_agent(state)},
    }
    if failing:
        body["failing"] = failing
    return JSONResponse(body, status_code=503 if failing else 200)
