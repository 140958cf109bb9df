"""A flow's graph: each node's exits, reachability, loops, and the Mermaid diagram."""

from __future__ import annotations

from collections.abc import Iterator

from zapflow.flows.language import Ask, Condition, FlowDefinition, Goto, Node

# the fields of any node type that name another node
EXIT_FIELDS = ("next", "on_failure", "on_timeout", "on_invalid", "default", "target")
WAITING_TYPES = {"ask", "wait"}


def exits(node: Node) -> Iterator[tuple[str, str]]:
    """(field, target id) for every edge leaving ``node``, in a stable order."""
    if isinstance(node, Condition):
        for i, branch in enumerate(node.branches):
            yield f"branches.{i}.next", branch.next
    for name in EXIT_FIELDS:
        target = getattr(node, name, None)
        if target is not None:
            yield name, target


def reachable(flow: FlowDefinition) -> set[str]:
    nodes = flow.node_map()
    seen: set[str] = set()
    todo = [flow.start] if flow.start in nodes else []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(t for _, t in exits(nodes[current]) if t in nodes)
    return seen


def loops(flow: FlowDefinition) -> list[list[str]]:
    """Every group of nodes that can reach each other in a cycle (Tarjan's strongly connected
    components, iteratively), each in document order."""
    nodes = flow.node_map()
    order = {node_id: i for i, node_id in enumerate(nodes)}
    edges = {n: [t for _, t in exits(node) if t in nodes] for n, node in nodes.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node_id, child = work.pop()
            if child == 0:
                index[node_id] = low[node_id] = len(index)
                stack.append(node_id)
                on_stack.add(node_id)
            targets = edges[node_id]
            if child < len(targets):
                work.append((node_id, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node_id] = min(low[node_id], index[target])
                continue
            if low[node_id] == index[node_id]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node_id:
                        break
                if len(component) > 1 or node_id in targets:
                    found.append(sorted(component, key=order.__getitem__))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node_id])
    return found


def mermaid(flow: FlowDefinition) -> str:
    """Mermaid ``flowchart`` text: one box per node (diamonds for conditions), labelled edges."""
    lines = ["flowchart TD"]
    lines.append('    start(("start")) --> ' + _key(flow.start))
    for node in flow.nodes:
        lines.append(f"    {_key(node.id)}{_shape(node)}")
    for node in flow.nodes:
        for field, target in exits(node):
            label = _edge_label(node, field)
            arrow = f"-->|{_quote(label)}|" if label else "-->"
            lines.append(f"    {_key(node.id)} {arrow} {_key(target)}")
    return "\n".join(lines) + "\n"


def _key(node_id: str) -> str:
    return "n_" + node_id.replace("-", "_")


def _quote(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _shape(node: Node) -> str:
    text = _quote(f"{node.id}: {node.label or node.type}")
    if isinstance(node, Condition):
        return "{" + text + "}"
    if node.type == "end":
        return "([" + text + "])"
    return "[" + text + "]"


def _edge_label(node: Node, field: str) -> str:
    if isinstance(node, Condition) and field.startswith("branches."):
        return node.branches[int(field.split(".")[1])].when
    if isinstance(node, Ask | Goto) and field in ("next", "target"):
        return ""
    return "" if field == "next" else field.removeprefix("on_")
