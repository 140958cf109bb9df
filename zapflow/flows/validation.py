"""The graph rules a flow document must pass before it is saved, each failure naming the node id
and the field at fault: unknown node ids, unreachable nodes, dead ends, loops without a
``wait``/``ask``, undefined variables, invalid expressions (syntax, unknown functions and their
arity, length and nesting), patterns RE2 does not run, the bounds on a flow's size
(``zapflow.flows.limits``), and destinations the egress policy refuses (the parts of a URL known
before a run: the whole URL, or its scheme and host). Stored flows are read with the model
alone: a rule added later refuses a document when it is next saved or published, never a run on
a stored version."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from zapflow.egress import FORBIDDEN_HEADERS, MAX_DEADLINE_SECONDS, EgressPolicy, EgressRefused
from zapflow.flows import expressions, limits, templates
from zapflow.flows.graph import WAITING_TYPES, exits, loops, reachable
from zapflow.flows.language import (
    Ask,
    Condition,
    End,
    FlowDefinition,
    Goto,
    HttpRequest,
    KeywordTrigger,
    Node,
    RegexTrigger,
    SendMedia,
    compile_keywords,
    compile_pattern,
    seconds,
)

CONTACT_FIELDS = {"name", "phone_number", "email", "tags", "custom_fields"}
# per node type: the fields holding templates and the ones holding expressions
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "send_text": ("text",),
    "send_media": ("url", "caption"),
    "send_template": ("params",),
    "send_buttons": ("text",),
    "send_list": ("text",),
    "ask": ("prompt", "retry_prompt"),
    "update_contact": ("name", "email", "custom_fields"),
    "create_deal": ("title",),
    "http_request": ("url", "headers", "body"),
    "handoff": ("note",),
    "tag": ("tag",),
    "untag": ("tag",),
}
EXPRESSION_FIELDS: dict[str, tuple[str, ...]] = {
    "set_variable": ("value",),
    "create_deal": ("value",),
}
# the fields whose variable a node sets
SETS_FIELDS = ("variable",)
# a URL template's scheme and host, when they come before the first interpolation
NO_EXCEPTIONS = EgressPolicy()
URL_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#{]*[/?#]")


class FlowIssue(BaseModel):
    node_id: str | None
    field: str
    code: str
    message: str


class InvalidFlow(ValueError):
    def __init__(self, issues: list[FlowIssue]) -> None:
        super().__init__("; ".join(f"{i.node_id}.{i.field}: {i.message}" for i in issues))
        self.issues = issues


def parse_flow(document: dict[str, Any], egress: EgressPolicy = NO_EXCEPTIONS) -> FlowDefinition:
    """The validated flow, or ``InvalidFlow`` listing every problem with its node and field;
    ``egress``: the operator's policy (by default, public destinations only)."""
    try:
        flow = FlowDefinition.model_validate(document)
    except ValidationError as exc:
        raise InvalidFlow(_schema_issues(document, exc)) from None
    issues = check(flow, egress)
    if issues:
        raise InvalidFlow(issues)
    return flow


def _schema_issues(document: dict[str, Any], exc: ValidationError) -> list[FlowIssue]:
    nodes = document.get("nodes")
    raw_nodes: list[Any] = nodes if isinstance(nodes, list) else []
    issues = []
    for error in exc.errors():
        loc = list(error["loc"])
        node_id = None
        if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
            raw = raw_nodes[loc[1]] if loc[1] < len(raw_nodes) else None
            raw = raw if isinstance(raw, dict) else {}
            node_id = str(raw["id"]) if "id" in raw else f"#{loc[1]}"
            # pydantic names the union member (the node's type) after the index: drop it
            loc = loc[3:] if len(loc) > 2 and loc[2] == raw.get("type") else loc[2:]
        field = ".".join(str(part) for part in loc) or "type"
        issues.append(FlowIssue(node_id=node_id, field=field, code="schema", message=error["msg"]))
    return issues


def check(flow: FlowDefinition, egress: EgressPolicy = NO_EXCEPTIONS) -> list[FlowIssue]:
    return [
        *_size(flow),
        *_triggers(flow),
        *_duplicates(flow),
        *_unknown_targets(flow),
        *_unreachable(flow),
        *_dead_ends(flow),
        *_loops_without_wait(flow),
        *_expressions_and_variables(flow),
        *_egress(flow, egress),
    ]


def _size(flow: FlowDefinition) -> Iterator[FlowIssue]:
    if len(flow.nodes) > limits.MAX_NODES:
        yield FlowIssue(
            node_id=None, field="nodes", code="too_large",
            message=f"a flow has at most {limits.MAX_NODES} nodes",
        )  # fmt: skip
    if len(flow.layout) > limits.MAX_NODES:
        yield FlowIssue(
            node_id=None, field="layout", code="too_large",
            message=f"a layout places at most {limits.MAX_NODES} nodes",
        )  # fmt: skip
    try:
        limits.check_value(flow.variables)
    except limits.ValueTooLarge as exc:
        yield FlowIssue(node_id=None, field="variables", code="too_large", message=str(exc))


def _triggers(flow: FlowDefinition) -> Iterator[FlowIssue]:
    for i, trigger in enumerate(flow.triggers):
        try:
            if isinstance(trigger, RegexTrigger):
                compile_pattern(trigger.pattern)
            elif isinstance(trigger, KeywordTrigger):
                compile_keywords(trigger.keywords)
        except ValueError as exc:
            field = "pattern" if isinstance(trigger, RegexTrigger) else "keywords"
            yield FlowIssue(
                node_id=None, field=f"triggers.{i}.{field}", code="invalid_trigger",
                message=str(exc),
            )  # fmt: skip


def _duplicates(flow: FlowDefinition) -> Iterator[FlowIssue]:
    for node_id, count in Counter(n.id for n in flow.nodes).items():
        if count > 1:
            yield FlowIssue(
                node_id=node_id, field="id", code="duplicate_node",
                message=f"{count} nodes have the id {node_id!r}",
            )  # fmt: skip


def _unknown_targets(flow: FlowDefinition) -> Iterator[FlowIssue]:
    known = {n.id for n in flow.nodes}
    if flow.start not in known:
        yield FlowIssue(
            node_id=None, field="start", code="unknown_node",
            message=f"start names {flow.start!r}, which is not a node",
        )  # fmt: skip
    for node in flow.nodes:
        for field, target in exits(node):
            if target not in known:
                yield FlowIssue(
                    node_id=node.id, field=field, code="unknown_node",
                    message=f"{field} names {target!r}, which is not a node",
                )  # fmt: skip


def _unreachable(flow: FlowDefinition) -> Iterator[FlowIssue]:
    if flow.start not in flow.node_map():
        return
    seen = reachable(flow)
    for node in flow.nodes:
        if node.id not in seen:
            yield FlowIssue(
                node_id=node.id, field="id", code="unreachable",
                message="no path from the start node leads here",
            )  # fmt: skip


def _dead_ends(flow: FlowDefinition) -> Iterator[FlowIssue]:
    for node in flow.nodes:
        missing = _missing_exit(node)
        if missing:
            field, message = missing
            yield FlowIssue(node_id=node.id, field=field, code="dead_end", message=message)


def _missing_exit(node: Node) -> tuple[str, str] | None:
    if isinstance(node, End | Goto):
        return None
    if isinstance(node, Condition):
        if node.default is None:
            return "default", "a condition needs a default for when no branch holds"
        return None
    if isinstance(node, Ask) and node.timeout and node.on_timeout is None:
        return "on_timeout", "an ask with a timeout needs on_timeout"
    if getattr(node, "next", None) is None:
        return "next", f"a {node.type} node needs next (only end nodes stop a flow)"
    return None


def _loops_without_wait(flow: FlowDefinition) -> Iterator[FlowIssue]:
    nodes = flow.node_map()
    for members in loops(flow):
        if not any(nodes[m].type in WAITING_TYPES for m in members):
            first = nodes[members[0]]
            field = next(f for f, t in exits(first) if t in members)
            yield FlowIssue(
                node_id=first.id, field=field, code="loop_without_wait",
                message=f"the loop {' → '.join(members)} has no wait or ask: it would never rest",
            )  # fmt: skip


def defined_variables(flow: FlowDefinition) -> set[str]:
    defined = set(flow.variables)
    for node in flow.nodes:
        for name in SETS_FIELDS:
            value = getattr(node, name, None)
            if isinstance(value, str):
                defined.add(value)
        defined.update(getattr(node, "save", {}))
    return defined


def _template_texts(node: Node) -> Iterator[tuple[str, str]]:
    for name in TEMPLATE_FIELDS.get(node.type, ()):
        value = getattr(node, name)
        if isinstance(value, str):
            yield name, value
        elif isinstance(value, list):
            yield from ((f"{name}.{i}", v) for i, v in enumerate(value))
        elif isinstance(value, dict):
            yield from ((f"{name}.{k}", v) for k, v in value.items())


def _expression_texts(node: Node) -> Iterator[tuple[str, str]]:
    if isinstance(node, Condition):
        yield from ((f"branches.{i}.when", b.when) for i, b in enumerate(node.branches))
    for name in EXPRESSION_FIELDS.get(node.type, ()):
        value = getattr(node, name)
        if value is not None:
            yield name, value


def _expressions_and_variables(flow: FlowDefinition) -> Iterator[FlowIssue]:
    defined = defined_variables(flow)
    for node in flow.nodes:
        for field, text in _expression_texts(node):
            try:
                used = expressions.names(text)
            except expressions.ExpressionError as exc:
                yield FlowIssue(
                    node_id=node.id, field=field, code="invalid_expression", message=str(exc)
                )
                continue
            yield from _undefined(node.id, field, used, defined)
        for field, text in _template_texts(node):
            if len(text) > limits.MAX_TEXT:
                yield FlowIssue(
                    node_id=node.id, field=field, code="too_large",
                    message=f"a text has at most {limits.MAX_TEXT} characters",
                )  # fmt: skip
                continue
            yield from _undefined(node.id, field, templates.names(text), defined)


def _undefined(node_id: str, field: str, used: set[str], defined: set[str]) -> Iterator[FlowIssue]:
    for path in sorted(used):
        head, _, rest = path.partition(".")
        known = rest.split(".")[0] in CONTACT_FIELDS if head == "contact" else head in defined
        if not known:
            yield FlowIssue(
                node_id=node_id, field=field, code="undefined_variable",
                message=f"{path!r} is not a declared variable, one a node sets, or a contact field",
            )  # fmt: skip


def _egress(flow: FlowDefinition, egress: EgressPolicy) -> Iterator[FlowIssue]:
    for node in flow.nodes:
        if not isinstance(node, HttpRequest | SendMedia):
            continue
        known = static_url(node.url)
        if known is not None:
            try:
                egress.check_url(known)
            except EgressRefused as exc:
                yield FlowIssue(
                    node_id=node.id, field="url", code="egress_refused", message=exc.reason
                )
        if not isinstance(node, HttpRequest):
            continue
        for name in node.headers:
            if name.lower() in FORBIDDEN_HEADERS:
                yield FlowIssue(
                    node_id=node.id, field=f"headers.{name}", code="forbidden_header",
                    message=f"the {name} header is set by zapflow, not by a flow",
                )  # fmt: skip
        if seconds(node.timeout) > MAX_DEADLINE_SECONDS:
            yield FlowIssue(
                node_id=node.id, field="timeout", code="timeout_too_long",
                message=f"an http_request waits at most {MAX_DEADLINE_SECONDS:g} s",
            )  # fmt: skip


def static_url(template: str) -> str | None:
    """What a URL template fixes before a run: the whole URL, or its scheme and host when only
    the path or query are interpolated; None when variables give the scheme or the host."""
    if "{{" not in template:
        return template
    origin = URL_ORIGIN.match(template.split("{{", 1)[0])
    return origin.group(0) if origin else None
