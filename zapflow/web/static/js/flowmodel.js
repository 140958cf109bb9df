// The flow document as the editor sees it: the node types of the language (zapflow/flows/
// language.py) grouped for the palette, each with its fields and its exits (the outputs a handle
// connects), plus what the canvas needs from a document: the edges, the variables defined upstream
// of a node, an automatic layered layout, and the differences between two versions.

const LINEAR = [["next", "next"]];
const FALLIBLE = [["next", "next"], ["on_failure", "failure"]];
const CHOICES = "choices"; // lines "id: title"
const PAIRS = "pairs"; // lines "key: value"

// A run still going (its customer is somewhere in the flow), as `GET /flows/{id}/node-runs` counts it.
export function inFlight(status) {
  return status === "running" || status === "waiting";
}

// field kinds: text, template (interpolated text), expression, variable (a name it sets),
// select, number, duration, list (one per line), choices, pairs, branches
export const TYPES = {
  send_text: { group: "messages", fields: [["text", "template", { required: true }]], exits: LINEAR },
  send_media: {
    group: "messages",
    fields: [["url", "template", { required: true }], ["kind", "select", { options: ["image", "video", "audio", "document"] }],
      ["caption", "template"], ["filename", "text"]],
    exits: LINEAR,
  },
  send_template: {
    group: "messages",
    fields: [["name", "template-name", { required: true }], ["language", "text"], ["params", "list"]],
    exits: LINEAR,
  },
  send_buttons: { group: "messages", fields: [["text", "template", { required: true }], ["buttons", CHOICES, { required: true }]], exits: LINEAR },
  send_list: {
    group: "messages",
    fields: [["text", "template", { required: true }], ["button", "text"], ["items", CHOICES, { required: true }]],
    exits: LINEAR,
  },
  ask: {
    group: "questions",
    fields: [["prompt", "template"], ["variable", "variable", { required: true }],
      ["validation", "select", { options: ["text", "number", "email", "phone", "date", "choice"] }],
      ["choices", "list"], ["retry_prompt", "template"], ["max_retries", "number"], ["timeout", "duration"]],
    exits: [["next", "next"], ["on_timeout", "timeout"], ["on_invalid", "invalid"]],
  },
  wait: { group: "questions", fields: [["duration", "duration", { required: true }]], exits: LINEAR },
  condition: { group: "logic", fields: [["branches", "branches"]], exits: [["default", "default"]] },
  set_variable: { group: "logic", fields: [["variable", "variable", { required: true }], ["value", "expression", { required: true }]], exits: LINEAR },
  goto: { group: "logic", fields: [], exits: [["target", "go to"]] },
  end: { group: "logic", fields: [], exits: [] },
  tag: { group: "crm", fields: [["tag", "template", { required: true }]], exits: FALLIBLE },
  untag: { group: "crm", fields: [["tag", "template", { required: true }]], exits: FALLIBLE },
  update_contact: { group: "crm", fields: [["name", "template"], ["email", "template"], ["custom_fields", PAIRS]], exits: FALLIBLE },
  create_deal: {
    group: "crm",
    fields: [["title", "template", { required: true }], ["value", "expression"], ["funnel", "text", { required: true }],
      ["stage", "text"], ["variable", "variable"]],
    exits: FALLIBLE,
  },
  move_deal: { group: "crm", fields: [["stage", "text", { required: true }], ["deal_variable", "text"]], exits: FALLIBLE },
  http_request: {
    group: "integrations",
    fields: [["method", "select", { options: ["POST", "GET", "PUT", "PATCH", "DELETE"] }], ["url", "template", { required: true }],
      ["headers", PAIRS], ["body", "template"], ["timeout", "duration"], ["retries", "number"], ["save", PAIRS]],
    exits: FALLIBLE,
  },
  ai_reply: { group: "ai", fields: [["instructions", "template"], ["variable", "variable"]], exits: FALLIBLE },
  handoff: { group: "handoff", fields: [["team", "text"], ["assign_user_id", "user"], ["note", "template"]], exits: LINEAR },
};
export const GROUPS = ["messages", "questions", "logic", "crm", "integrations", "ai", "handoff"];
export const NODE_W = 190;
export const NODE_H = 58;

// Every output of a node: [field, label, target or undefined], in a stable order (as graph.py's
// exits); conditions have one per branch and then the default.
export function outputs(node) {
  const spec = TYPES[node.type];
  const found = [];
  if (node.type === "condition") {
    (node.branches || []).forEach((branch, i) => found.push([`branches.${i}.next`, branch.when || `#${i + 1}`, branch.next]));
  }
  for (const [field, label] of spec ? spec.exits : []) found.push([field, label, node[field]]);
  return found;
}

export function setOutput(node, field, target) {
  if (field.startsWith("branches.")) {
    const branch = node.branches[Number(field.split(".")[1])];
    if (target == null) branch.next = "";
    else branch.next = target;
  } else if (target == null) delete node[field];
  else node[field] = target;
}

// Which nodes every node leads to: Map id → [[field, target]] for targets that exist.
export function edges(doc) {
  const ids = new Set(doc.nodes.map((n) => n.id));
  const found = [];
  for (const node of doc.nodes) {
    for (const [field, , target] of outputs(node)) if (target && ids.has(target)) found.push({ from: node.id, field, to: target });
  }
  return found;
}

// The variable names a node may read: declared ones and those set by the nodes that can come
// before it (its ancestors), sorted.
// node id → the ids of the nodes with an output to it
function parentsOf(doc) {
  const parents = new Map();
  for (const edge of edges(doc)) {
    if (!parents.has(edge.to)) parents.set(edge.to, []);
    parents.get(edge.to).push(edge.from);
  }
  return parents;
}

export function upstreamVariables(doc, nodeId) {
  const parents = parentsOf(doc);
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const names = new Set(Object.keys(doc.variables || {}));
  const seen = new Set();
  const todo = [...(parents.get(nodeId) || [])];
  while (todo.length) {
    const id = todo.pop();
    if (seen.has(id)) continue;
    seen.add(id);
    const node = byId.get(id);
    if (node?.variable) names.add(node.variable);
    for (const name of Object.keys(node?.save || {})) names.add(name);
    todo.push(...(parents.get(id) || []));
  }
  return [...names].sort();
}

// The choices an ask after `nodeId`'s parents reads a tap from: those of the nearest send_buttons
// or send_list upstream (the engine takes a tapped id against the choices last sent), or null.
export function offeredChoices(doc, nodeId) {
  const parents = parentsOf(doc);
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const seen = new Set([nodeId]);
  const queue = [...(parents.get(nodeId) || [])];
  while (queue.length) {
    const node = byId.get(queue.shift());
    if (!node || seen.has(node.id)) continue;
    seen.add(node.id);
    const choices = node.type === "send_buttons" ? node.buttons : node.type === "send_list" ? node.items : null;
    if (choices?.length) return { from: node.id, choices: choices.filter((c) => c?.id) };
    queue.push(...(parents.get(node.id) || []));
  }
  return null;
}

// A layered layout: each node in the column of its longest path from the start (back edges
// ignored), rows in document order; nodes not reached go in a last column.
export function autoLayout(doc) {
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const rank = new Map();
  const order = [];
  const visiting = new Set();
  const visit = (id) => {
    // depth-first post-order gives a topological order of the graph without its back edges
    const stack = [[id, 0]];
    visiting.add(id);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const targets = outputs(byId.get(top[0])).map((o) => o[2]).filter((t) => byId.has(t));
      if (top[1] < targets.length) {
        const next = targets[top[1]++];
        if (!visiting.has(next)) {
          visiting.add(next);
          stack.push([next, 0]);
        }
      } else {
        order.push(stack.pop()[0]);
      }
    }
  };
  if (byId.has(doc.start)) visit(doc.start);
  order.reverse();
  const position = new Map(order.map((id, i) => [id, i]));
  for (const id of order) {
    if (!rank.has(id)) rank.set(id, 0);
    for (const [, , target] of outputs(byId.get(id))) {
      if (byId.has(target) && position.get(target) > position.get(id)) rank.set(target, Math.max(rank.get(target) || 0, rank.get(id) + 1));
    }
  }
  const last = Math.max(-1, ...rank.values()) + 1;
  const rows = new Map();
  const layout = {};
  for (const node of doc.nodes) {
    const column = rank.has(node.id) ? rank.get(node.id) : last;
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    layout[node.id] = { x: 40 + column * (NODE_W + 70), y: 40 + row * (NODE_H + 50) };
  }
  return layout;
}

// Nodes of `after` that are new, gone or changed since `before` (positions aside).
export function compare(before, after) {
  const old = new Map(before.nodes.map((n) => [n.id, JSON.stringify(n)]));
  const now = new Map(after.nodes.map((n) => [n.id, JSON.stringify(n)]));
  const added = [...now.keys()].filter((id) => !old.has(id));
  const removed = [...old.keys()].filter((id) => !now.has(id));
  const changed = [...now.keys()].filter((id) => old.has(id) && old.get(id) !== now.get(id));
  return { added, removed, changed };
}

// A node id not yet in the document: the type and the first free number.
export function freshId(doc, type) {
  const ids = new Set(doc.nodes.map((n) => n.id));
  let n = 1;
  while (ids.has(`${type}_${n}`)) n++;
  return `${type}_${n}`;
}

// A node's id changed: every reference to it (start, exits, goto targets, layout) follows.
export function renameNode(doc, from, to) {
  if (doc.start === from) doc.start = to;
  for (const node of doc.nodes) {
    if (node.id === from) node.id = to;
    for (const [field, , target] of outputs(node)) if (target === from) setOutput(node, field, to);
  }
  if (doc.layout?.[from]) {
    doc.layout[to] = doc.layout[from];
    delete doc.layout[from];
  }
}

// A node removed with every reference to it (the exits pointing at it are left unset).
export function removeNode(doc, id) {
  doc.nodes = doc.nodes.filter((n) => n.id !== id);
  if (doc.start === id) doc.start = "";
  for (const node of doc.nodes) for (const [field, , target] of outputs(node)) if (target === id) setOutput(node, field, null);
  if (doc.layout) delete doc.layout[id];
}
