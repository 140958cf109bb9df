"""The layering rules, read from the source's imports (no stack needed).

- Workflow modules (``zapflow/workflows/*``) import only workflow-safe code: never services, the
  database, models, the cache, the API or the worker, not even passed through the sandbox; and
  activities only inside ``workflow.unsafe.imports_passed_through()`` (to name their methods).
  Of zapflow's own modules they import only those listed in ``WORKFLOW_SAFE`` (pure code:
  inputs, policies, the flow engine and language, provider payload types and interactive
  messages' limits, ids and search attributes), and those import nothing outside the list
  either. (A package's ``__init__`` runs
  too when one of its modules is imported; ``zapflow/whatsapp/__init__.py`` loads the provider
  clients, which the sandbox passes through: not checked here.)
- Routes call no activities: nothing under ``zapflow/api`` imports ``zapflow.activities``.
- Services import no routes: nothing under ``zapflow/services`` imports ``zapflow.api``,
  ``zapflow.activities`` or ``zapflow.worker``.
- Schemas are shapes only: ``zapflow/schemas`` imports no services, API, activities, worker or
  workflows; and route modules define no request/response models (they live in the schemas).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "zapflow"

NEVER_IN_WORKFLOWS = (
    "zapflow.services",
    "zapflow.db",
    "zapflow.models",
    "zapflow.cache",
    "zapflow.redis",
    "zapflow.api",
    "zapflow.worker",
)
PASSED_THROUGH_ONLY = ("zapflow.activities",)
WORKFLOW_SAFE = (
    "zapflow.workflows",
    "zapflow.flows.engine",
    "zapflow.flows.language",
    "zapflow.flows.expressions",
    "zapflow.flows.templates",
    "zapflow.flows.limits",
    "zapflow.whatsapp.types",
    "zapflow.whatsapp.errors",
    "zapflow.whatsapp.interactive",
    "zapflow.whatsapp.jid",
    "zapflow.temporal",
    "zapflow.config",
)
# packages named by ``from zapflow.flows import limits``: the module is what is checked
PACKAGES = ("zapflow", "zapflow.flows", "zapflow.whatsapp", "zapflow.workflows")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: resolve against the importing module's package
        base = module.rsplit(".", node.level)[0]
        return [f"{base}.{node.module}" if node.module else base]
    assert node.module is not None
    # ``from zapflow import services`` imports the package zapflow.services
    return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]


def _passes_through(node: ast.With) -> bool:
    return any(
        isinstance(item.context_expr, ast.Call)
        and ast.unparse(item.context_expr.func) == "workflow.unsafe.imports_passed_through"
        for item in node.items
    )


def imports(path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, inside ``imports_passed_through``) for each import in the file."""
    module = _module(path)

    def walk(node: ast.AST, passed: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in _imported(child, module):
                    yield name, child.lineno, passed
            else:
                inside = passed or (isinstance(child, ast.With) and _passes_through(child))
                yield from walk(child, inside)

    yield from walk(ast.parse(path.read_text(), str(path)), False)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _files(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files("workflows"), ids=lambda p: p.name)
def test_workflow_modules_import_only_workflow_safe_code(path: Path) -> None:
    wrong = [
        f"{path.name}:{line} imports {name}" + (" (passed through)" if passed else "")
        for name, line, passed in imports(path)
        if _within(name, NEVER_IN_WORKFLOWS) or (_within(name, PASSED_THROUGH_ONLY) and not passed)
    ]
    assert not wrong


def _own(name: str) -> bool:
    return name.startswith("zapflow.") and name not in PACKAGES


def _safe_module_files() -> list[Path]:
    files = []
    for name in WORKFLOW_SAFE:
        path = PACKAGE.parent / Path(*name.split("."))
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return files


@pytest.mark.parametrize("path", _safe_module_files(), ids=lambda p: _module(p))
def test_workflow_safe_code_imports_only_workflow_safe_code(path: Path) -> None:
    """Workflow modules and what they import reach no other zapflow module (activities passed
    through excepted)."""
    wrong = [
        f"{_module(path)}:{line} imports {name}"
        for name, line, passed in imports(path)
        if _own(name)
        and not _within(name, WORKFLOW_SAFE)
        and not (passed and _within(name, PASSED_THROUGH_ONLY))
    ]
    assert not wrong


def _importing(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{_module(path)}:{line} imports {name}"
        for path in _files(folder)
        for name, line, _ in imports(path)
        if _within(name, forbidden)
    ]


def test_routes_call_no_activities() -> None:
    assert not _importing("api", ("zapflow.activities",))


def test_services_import_no_routes() -> None:
    assert not _importing("services", ("zapflow.api", "zapflow.activities", "zapflow.worker"))


def test_schemas_import_only_shapes() -> None:
    layers = ("zapflow.services", "zapflow.api", "zapflow.activities", "zapflow.worker")
    assert not _importing("schemas", (*layers, "zapflow.workflows", "zapflow.db"))


def test_routes_define_no_models() -> None:
    models = [
        f"{_module(path)}:{node.lineno} defines {node.name}"
        for path in _files("api/routes")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.ClassDef)
    ]
    assert not models


def test_the_reader_tells_passed_through_imports_apart() -> None:
    found = {name: passed for name, _, passed in imports(PACKAGE / "workflows" / "conversation.py")}
    assert found["zapflow.activities.messages"] is True
    assert found["temporalio.workflow"] is False
