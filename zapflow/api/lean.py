"""Routes whose dependencies are solved from a plan made once, not walked on every request.

FastAPI solves a route's dependency tree anew per request: it recurses into every declared
dependency (again for each place one is declared, such as the caller in ``Requires`` and in the
route), computes each one's cache key and scopes, and looks up four kinds of parameters at every
level. ``LeanRoute`` flattens the tree when the route is built: each dependency once, in the
order FastAPI would call it, with its parameters and the keys of the dependencies it takes. The
values are checked by FastAPI's own functions, so errors keep their shape (a 422 names the field)
and the OpenAPI schema is the route's as declared.

Only a tree this plan can solve the same way is planned: ``async def`` dependencies without
``yield``, cached (the default), taking no body, ``Response``, background tasks or security
scopes, for an endpoint annotated to return a ``Response`` (it serializes its own body). Any
other route gets FastAPI's handler.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import types
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, _effective_route_context_var
from pydantic import Json
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from fastapi._compat import ModelField

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


SCALARS = (str, int, float, uuid.UUID, datetime.date, datetime.time, decimal.Decimal, enum.Enum)
Source = Callable[[Request], Mapping[str, Any]]
SOURCES: dict[str, Source] = {
    "path": lambda request: request.path_params,
    "query": lambda request: request.query_params,
    "header": lambda request: request.headers,
    "cookie": lambda request: request.cookies,
}


def _scalar(annotation: Any) -> bool:
    """One value of a plain type (FastAPI reads it with ``get``), optional or not."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return all(arg is type(None) or _scalar(arg) for arg in get_args(annotation))
    if origin is Literal:
        return all(isinstance(arg, str | int) for arg in get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, SCALARS)


@dataclass(frozen=True)
class Param:
    """A request parameter; ``plain`` when it is read here (see the module), else by FastAPI's
    ``request_params_to_args``."""

    field: ModelField
    plain: bool
    defaulted: bool  # absent, it takes its default unvalidated (FastAPI says when it is missing)
    loc: tuple[str, str]  # where an error names it

    @classmethod
    def of(cls, field: ModelField) -> Param:
        info = field.field_info
        plain = (
            isinstance(info, params.Path | params.Query)
            and info.validation_alias is None
            and not getattr(field, "config", None)  # no by-name aliases
            and not any(type(item) is Json for item in info.metadata)
            and _scalar(info.annotation)
            # a default FastAPI would copy per request: only immutable ones are shared
            and (info.is_required() or isinstance(field.default, (*SCALARS, type(None))))
        )
        defaulted = not info.is_required() and not info.validate_default
        where = info.in_.value if isinstance(info, params.Param) else ""
        return cls(field, plain, defaulted, (where, field.alias))

    def read(self, given: Mapping[str, Any], values: dict[str, Any], errors: list[Any]) -> None:
        """Into ``values`` (or ``errors``) as FastAPI's ``request_params_to_args`` would."""
        field = self.field
        value = given.get(field.alias) if self.plain else None
        if value is None and not (self.plain and self.defaulted):
            found, wrong = request_params_to_args([field], given)
            values.update(found)
            errors += wrong
        elif value is None:
            values[field.name] = field.default
        else:
            value, wrong = field.validate(value, values, loc=self.loc)
            if wrong:
                errors += wrong
            else:
                values[field.name] = value


@dataclass(frozen=True)
class Step:
    """One dependency (or the endpoint, last): what it takes from the earlier steps, by
    parameter name, and its own request parameters."""

    call: Callable[..., Awaitable[Any]]
    takes: tuple[tuple[str, object], ...]  # (parameter, the call whose value it is)
    dependant: Dependant
    # per source (path, query, header, cookie) in FastAPI's order, the parameters read from it
    reads: tuple[tuple[Source, tuple[Param, ...]], ...]


def _plainly_async(call: object) -> bool:
    method = call if inspect.isroutine(call) else getattr(call, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(method) and not inspect.isasyncgenfunction(method)


def _solvable(dependant: Dependant) -> bool:
    return (
        _plainly_async(dependant.call)
        and dependant.use_cache
        and not dependant.body_params
        and dependant.websocket_param_name is None
        and dependant.response_param_name is None
        and dependant.background_tasks_param_name is None
        and dependant.security_scopes_param_name is None
        and not dependant.own_oauth_scopes
    )


def plan(dependant: Dependant) -> list[Step] | None:
    """The steps, dependencies first and each once; None when one cannot be planned."""
    steps: list[Step] = []
    planned: set[int] = set()

    def visit(node: Dependant) -> bool:
        for child in node.dependencies:
            if not visit(child):
                return False
        if id(node.call) in planned:
            return True
        if not _solvable(node):
            return False
        takes = tuple((child.name, child.call) for child in node.dependencies if child.name)
        steps.append(Step(node.call, takes, node, _reads(node)))  # type: ignore[arg-type]
        planned.add(id(node.call))
        return True

    return steps if visit(dependant) else None


def _reads(dependant: Dependant) -> tuple[tuple[Source, tuple[Param, ...]], ...]:
    return tuple(
        (SOURCES[where], tuple(Param.of(field) for field in fields))
        for where, fields in (
            ("path", dependant.path_params),
            ("query", dependant.query_params),
            ("header", dependant.header_params),
            ("cookie", dependant.cookie_params),
        )
        if fields
    )


def _own_values(step: Step, request: Request) -> tuple[dict[str, Any], list[Any]]:
    errors: list[Any] = []
    values: dict[str, Any] = {}
    for source, reads in step.reads:
        given = source(request)
        found: dict[str, Any] = {}  # FastAPI validates each source's parameters apart
        for param in reads:
            param.read(given, found, errors)
        values.update(found)
    dependant = step.dependant
    for name in (dependant.request_param_name, dependant.http_connection_param_name):
        if name:
            values[name] = request
    return values, errors


def lean_handler(steps: list[Step]) -> Handler:
    *dependencies, endpoint = steps

    async def handler(request: Request) -> Response:
        solved: dict[object, Any] = {}
        errors: list[Any] = []
        for step in dependencies:
            values, wrong = _own_values(step, request)
            errors += wrong
            if wrong or any(call not in solved for _, call in step.takes):
                continue  # as FastAPI: not called when its own values or its inputs failed
            values.update((name, solved[call]) for name, call in step.takes)
            solved[step.call] = await step.call(**values)
        values, wrong = _own_values(endpoint, request)
        errors += wrong
        if errors:
            raise RequestValidationError(errors)
        values.update((name, solved[call]) for name, call in endpoint.takes)
        response = await endpoint.call(**values)
        if not isinstance(response, Response):
            raise TypeError(f"{endpoint.call.__name__} must return a Response")
        return response

    return handler


def returns_response(call: Callable[..., Any]) -> bool:
    try:
        returned = get_type_hints(call).get("return")
    except (NameError, TypeError):  # an annotation only a type checker resolves
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


class LeanRoute(APIRoute):
    """An ``APIRoute`` solving its dependencies from a plan when it can (see the module)."""

    def get_route_handler(self) -> Handler:
        # As APIRoute: included in a router, the route's dependant is its inclusion's (with the
        # inclusion's dependencies). FastAPI 0.165 hands it to get_route_handler only through
        # this private ContextVar (its own code marks the hook "to replace"; no public way
        # exists); tests/test_lean_routes.py fails if an inclusion's dependency goes unplanned.
        context = _effective_route_context_var.get()
        route = context if context is not None and context.original_route is self else self
        steps = plan(route.dependant) if returns_response(self.endpoint) else None
        return super().get_route_handler() if steps is None else lean_handler(steps)
