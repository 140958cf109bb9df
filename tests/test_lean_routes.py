"""Lean routes (api/lean.py) answer as FastAPI's own handler does: the same values, the same
422s naming the fields, a failing dependency before the parameters' errors, each dependency
called once; routes the plan cannot solve the same way keep FastAPI's handler; the API's hot
reads and webhooks are planned."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query
from fastapi.dependencies.utils import request_params_to_args
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.routing import compile_path

from tests.fixtures.app import api_routes
from zapflow.api.app import create_app
from zapflow.api.errors import install_error_handlers
from zapflow.api.lean import LeanRoute, plan, returns_response
from zapflow.config import Settings
from zapflow.errors import Unauthorized

CALLS: Counter[str] = Counter()


async def caller(x_key: Annotated[str | None, Header()] = None) -> str:
    CALLS["caller"] += 1
    if x_key != "good":
        raise Unauthorized("no key")
    return x_key


Caller = Annotated[str, Depends(caller)]


async def page_size(caller: Caller, limit: Annotated[int, Query(ge=1, le=10)] = 5) -> int:
    CALLS["page_size"] += 1
    return limit


async def session() -> AsyncIterator[str]:
    yield "session"


def _app(route_class: type[APIRoute]) -> FastAPI:
    router = APIRouter(route_class=route_class)

    @router.get("/items/{item_id}", dependencies=[Depends(caller)])
    async def item(
        item_id: int, caller: Caller, size: Annotated[int, Depends(page_size)], q: str = "-"
    ) -> Response:
        return JSONResponse({"id": item_id, "caller": caller, "size": size, "q": q})

    @router.get("/with-session")
    async def with_session(held: Annotated[str, Depends(session)]) -> Response:
        return JSONResponse({"held": held})

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router, prefix="/v1")
    return app


async def _answers(route_class: type[APIRoute]) -> list[tuple[int, Any]]:
    transport = httpx.ASGITransport(app=_app(route_class))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        calls = [
            ("/v1/items/3?q=x&limit=7", {"x-key": "good"}),
            ("/v1/items/3", {}),  # the dependency's 401 before the parameters' checks
            ("/v1/items/three?limit=99", {"x-key": "good"}),
            ("/v1/items/three?limit=99", {}),
            ("/v1/with-session", {}),
        ]
        answers = []
        for path, headers in calls:
            response = await client.get(path, headers=headers)
            answers.append((response.status_code, response.json()))
        return answers


async def test_a_lean_route_answers_as_fastapi_does() -> None:
    CALLS.clear()
    fastapi = await _answers(APIRoute)
    fastapi_calls = dict(CALLS)
    CALLS.clear()
    assert await _answers(LeanRoute) == fastapi
    assert dict(CALLS) == fastapi_calls == {"caller": 4, "page_size": 1}
    assert fastapi[2][0] == 422
    fields = {detail["field"] for detail in fastapi[2][1]["error"]["details"]}
    assert fields == {"path.item_id", "query.limit"}


def test_only_routes_the_plan_solves_alike_are_planned() -> None:
    routes = dict(api_routes(_app(LeanRoute).router.routes))
    assert plan(routes["/v1/items/{item_id}"].dependant) is not None
    assert plan(routes["/v1/with-session"].dependant) is None  # a dependency with yield


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/conversations"),
        ("GET", "/api/v1/conversations/{conversation_id}/messages"),
        ("GET", "/api/v1/contacts"),
        ("GET", "/api/v1/contacts/{contact_id}"),
        ("GET", "/api/v1/funnels/{funnel_id}/board"),
        ("POST", "/webhooks/cloud/{token}"),
        ("POST", "/webhooks/evolution/{token}"),
    ],
)
def test_the_hot_routes_are_planned(method: str, path: str) -> None:
    routes = api_routes(create_app(Settings()).router.routes)
    route = next(r for p, r in routes if p == path and method in (r.methods or ()))
    assert isinstance(route, LeanRoute)
    assert returns_response(route.endpoint) and plan(route.dependant) is not None


async def test_an_inclusions_dependencies_are_planned() -> None:
    """LeanRoute reads the inclusion's dependant through FastAPI's private ContextVar
    (api/lean.py): were it gone or unset, the route would answer without the check."""

    async def refuse() -> None:
        raise Unauthorized("no key")

    router = APIRouter(route_class=LeanRoute)

    @router.get("/open")
    async def open_() -> Response:
        return JSONResponse({})

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router, prefix="/v1", dependencies=[Depends(refuse)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/v1/open")).status_code == 401


GIVEN = ["", "1", "0", "200", "x", "true", "me", "2026-12-02T10:00:00+00:00", "2026-12-02"]
GIVEN += ["6170ed59-ab4b-48bf-9af3-35ac4eecca3c", "open", "a" * 101]


def test_plain_parameters_are_read_as_fastapi_reads_them() -> None:
    """Every parameter of the app's lean routes that api/lean.py reads itself gives FastAPI's
    value or errors, for absent, empty, wrong and right values."""
    plain = set()
    for _, route in api_routes(create_app(Settings()).router.routes):
        for step in plan(route.dependant) or () if isinstance(route, LeanRoute) else ():
            for param in (p for _, params in step.reads for p in params if p.plain):
                plain.add(param.field.alias)
                for given in [QueryParams(), *(QueryParams({param.field.alias: v}) for v in GIVEN)]:
                    values: dict[str, Any] = {}
                    errors: list[Any] = []
                    param.read(given, values, errors)
                    assert (values, errors) == request_params_to_args([param.field], given)
    assert {"limit", "cursor", "q", "status", "contact_id", "funnel_id", "token"} <= plain


def test_no_route_shadows_another() -> None:
    """The routers are included busiest first (api/app.py): no route may then catch a later
    one's requests (``/contacts/{contact_id}`` before ``/contacts/merge`` would)."""
    routes = list(api_routes(create_app(Settings()).router.routes))
    for index, (path, route) in enumerate(routes):
        concrete = re.sub(r"\{[^}]+\}", "6170ed59-ab4b-48bf-9af3-35ac4eecca3c", path)
        for earlier, other in routes[:index]:
            caught = compile_path(earlier)[0].match(concrete) and other.methods & route.methods
            assert not caught, f"{earlier} catches {route.methods} {path}"
