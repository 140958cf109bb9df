"""Liveness (/healthz) and readiness (/readyz: Postgres, Redis and Temporal reachable, checked
at most once a second per process: ``api/readiness.py``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from zapflow.api.deps import StateDep
from zapflow.api.state import AppState

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


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
    components = await state.readiness.components(state)
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
