// The visual flow editor (#/flows/<id>/edit, loaded only there): an SVG canvas of our own (pan,
// zoom, drag nodes from the palette, drag an output's handle onto a node to connect), a side panel
// editing the selected node (editor-panel.js), undo/redo, copy/paste, auto-layout, fit, and the
// tools around it: the document as JSON text, the API's validation issues on their nodes and
// fields, the simulator with the path it took, versions (open read-only, compare), runs per node.
// The flow document is the one source of truth: positions live in its `layout` key.
import { api, qs } from "./api.js";
import { debounce, h, replace } from "./dom.js";
import { NodePanel, FlowPanel } from "./editor-panel.js";
import { EditorTools } from "./editor-tools.js";
import { errorText } from "./format.js";
import { GROUPS, NODE_H, NODE_W, TYPES, autoLayout, edges, freshId, inFlight, outputs, removeNode, setOutput } from "./flowmodel.js";

const SVG = "http://www.w3.org/2000/svg";
const HISTORY = 200;
const MOVED = 4; // pixels a press travels before it is a drag, not a click
const PORT_GAP = 18;
const STYLESHEET = "editor.css";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value != null) el.setAttribute(name, value);
  for (const child of children.flat()) if (child != null) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

export function nodeHeight(node) {
  return Math.max(NODE_H, outputs(node).length * PORT_GAP + 14);
}

function clip(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function exitKind(field) {
  if (field.startsWith("branches.")) return "branch";
  return { on_failure: "failure", on_timeout: "timeout", on_invalid: "invalid" }[field] || field;
}

function loadStylesheet() {
  if (!document.querySelector(`link[href="${STYLESHEET}"]`)) document.head.append(h("link", { rel: "stylesheet", href: STYLESHEET }));
}

export class FlowEditor {
  constructor(root, { flowId, template, ctx }) {
    loadStylesheet();
    this.ctx = ctx;
    this.flowId = flowId;
    this.view = { x: 0, y: 0, k: 1 };
    this.undoStack = [];
    this.redoStack = [];
    this.lastKey = null;
    this.selected = null;
    this.issues = [];
    this.path = { nodes: new Set(), edges: new Set() };
    this.marks = new Map(); // node id → added | changed | removed (comparing versions)
    this.counts = new Map(); // node id → {active, ended}
    this.readOnly = false;
    this.validateSoon = debounce(() => this.validate(), 400);
    this.build(root);
    this.ready = this.load(template);
  }

  build(root) {
    this.viewport = s("g", { class: "viewport" });
    this.edgeLayer = s("g", { class: "edges" });
    this.nodeLayer = s("g", { class: "nodes" });
    this.viewport.append(this.edgeLayer, this.nodeLayer);
    this.svg = s("svg", { class: "flow-canvas", role: "application", "aria-label": "Flow canvas", tabindex: "0" }, this.viewport);
    this.status = h("p", { class: "editor-status", role: "status" });
    this.title = h("h2", {});
    this.palette = this.buildPalette();
    this.side = h("aside", { class: "editor-side", "aria-label": "Properties" });
    this.tools = new EditorTools(this);
    this.el = h(
      "div",
      { class: "flow-editor" },
      h("p", { class: "editor-narrow" }, "The flow editor needs a screen at least 900 pixels wide. Open this flow on a desktop, or use its diagram."),
      h("header", { class: "editor-bar" }, this.title, this.toolbar(), this.status),
      h("div", { class: "editor-body" }, this.palette, h("div", { class: "canvas-wrap" }, this.svg), this.side),
      this.tools.el,
    );
    root.append(this.el);
    this.svg.addEventListener("pointerdown", (e) => this.pressCanvas(e));
    this.svg.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.el.addEventListener("keydown", (e) => this.key(e));
  }

  toolbar() {
    const button = (label, action, shortcut) =>
      h("button", { type: "button", onclick: action, title: shortcut ? `${label} (${shortcut})` : label, "aria-keyshortcuts": shortcut }, label);
    this.saveButton = button("Save draft", () => this.save(), "Control+S");
    this.publishButton = h("button", { type: "button", class: "primary", onclick: () => this.publish() }, "Publish");
    this.note = h("input", { class: "publish-note", "aria-label": "Version note", placeholder: "What changed (for the versions list)", maxlength: "1000" });
    this.editButtons = [
      button("Undo", () => this.undo(), "Control+Z"),
      button("Redo", () => this.redo(), "Control+Shift+Z"),
      button("Delete", () => this.deleteSelected(), "Delete"),
      button("Auto-layout", () => this.relayout(), "L"),
      this.saveButton,
      this.note,
      this.publishButton,
    ];
    return h(
      "div",
      { class: "editor-actions", role: "toolbar", "aria-label": "Editor" },
      this.editButtons,
      button("Fit", () => this.fit(), "F"),
      button("Zoom in", () => this.zoom(1.25), "+"),
      button("Zoom out", () => this.zoom(0.8), "-"),
    );
  }

  buildPalette() {
    const groups = GROUPS.map((group) =>
      h(
        "section",
        { class: "palette-group" },
        h("h3", {}, group === "crm" ? "CRM" : group === "ai" ? "AI" : group[0].toUpperCase() + group.slice(1)),
        Object.entries(TYPES)
          .filter(([, spec]) => spec.group === group)
          .map(([type]) => h("button", { type: "button", class: "palette-item", "data-type": type, "data-group": group, onpointerdown: (e) => this.pressPalette(e, type) }, type)),
      ),
    );
    return h("nav", { class: "palette", "aria-label": "Node types: drag onto the canvas, or press to add" }, groups);
  }

  // --- the document -------------------------------------------------------------------------

  async load(template) {
    let doc;
    if (this.flowId) {
      try {
        this.flow = await api(`/flows/${this.flowId}`);
      } catch (error) {
        this.say(errorText(error));
        return;
      }
      doc = structuredClone(this.flow.draft_definition);
    } else {
      doc = structuredClone(template || { name: "New flow", start: "", nodes: [] });
    }
    this.setDocument(doc);
    this.tools.loaded();
    this.loadCounts();
  }

  // A document opened (loaded, from text, a version): nodes without a position are laid out.
  setDocument(doc) {
    doc.nodes ||= [];
    doc.layout ||= {};
    if (doc.nodes.some((n) => !doc.layout[n.id])) {
      const auto = autoLayout(doc);
      for (const node of doc.nodes) doc.layout[node.id] ||= auto[node.id];
    }
    this.doc = doc;
    this.title.textContent = doc.name;
    this.render();
    this.fit();
    this.validateSoon();
  }

  // Before every change: what undo returns to. Changes with the same key in a row (typing in
  // one field) are one step.
  checkpoint(key = null) {
    if (key && key === this.lastKey) return;
    this.lastKey = key;
    this.undoStack.push(JSON.stringify(this.doc));
    if (this.undoStack.length > HISTORY) this.undoStack.shift();
    this.redoStack = [];
  }

  change(fn, key = null) {
    if (this.readOnly) return;
    this.checkpoint(key);
    fn(this.doc);
    this.dirty = true;
    this.render();
    this.validateSoon();
  }

  restore(from, to) {
    if (this.readOnly || !from.length) return;
    to.push(JSON.stringify(this.doc));
    this.doc = JSON.parse(from.pop());
    this.lastKey = null;
    if (this.selected && !this.node(this.selected)) this.selected = null;
    this.dirty = true;
    this.render();
    this.validateSoon();
  }

  undo() {
    this.restore(this.undoStack, this.redoStack);
  }

  redo() {
    this.restore(this.redoStack, this.undoStack);
  }

  node(id) {
    return this.doc.nodes.find((n) => n.id === id);
  }

  addNode(type, at) {
    const id = freshId(this.doc, type);
    this.change((doc) => {
      const node = { id, type };
      if (type === "condition") node.branches = [];
      doc.nodes.push(node);
      doc.layout[id] = { x: Math.round(at.x), y: Math.round(at.y) };
      if (!doc.start) doc.start = id;
    });
    this.select(id);
  }

  deleteSelected() {
    if (!this.selected) return;
    const id = this.selected;
    if (id.includes("->")) {
      const [from, field] = id.split("->");
      this.change(() => setOutput(this.node(from), field, null));
    } else this.change((doc) => removeNode(doc, id));
    this.select(null);
  }

  copy() {
    const node = this.selected && this.node(this.selected);
    if (node) this.clipboard = { node: structuredClone(node), at: this.doc.layout[node.id] };
  }

  paste() {
    if (!this.clipboard) return;
    const node = structuredClone(this.clipboard.node);
    node.id = freshId(this.doc, node.type);
    const at = this.clipboard.at || { x: 0, y: 0 };
    this.clipboard.at = { x: at.x + 30, y: at.y + 30 };
    this.change((doc) => {
      doc.nodes.push(node);
      doc.layout[node.id] = { ...this.clipboard.at };
    });
    this.select(node.id);
  }

  relayout() {
    this.change((doc) => (doc.layout = autoLayout(doc)));
    this.fit();
  }

  // --- drawing --------------------------------------------------------------------------------

  render() {
    this.title.textContent = this.doc.name;
    const byIssue = new Map();
    for (const issue of this.issues) {
      if (!issue.node_id) continue;
      byIssue.set(issue.node_id, [...(byIssue.get(issue.node_id) || []), issue]);
    }
    const ghosts = this.ghosts || [];
    replace(this.nodeLayer, this.startMarker(), [...this.doc.nodes, ...ghosts].map((node) => this.drawNode(node, byIssue.get(node.id))));
    this.drawEdges();
    this.panel();
    this.tools.render();
  }

  startMarker() {
    const first = this.doc.layout[this.doc.start] || { x: 40, y: 40 };
    const at = { x: first.x - 80, y: first.y + NODE_H / 2 - 14 };
    this.startAt = at;
    return s(
      "g",
      { class: "start-marker", transform: `translate(${at.x},${at.y})` },
      s("rect", { width: 50, height: 28, rx: 14 }),
      s("text", { x: 25, y: 18, "text-anchor": "middle" }, "start"),
      s("circle", { class: "port", "data-port": "start", cx: 50, cy: 14, r: 6 }, s("title", {}, "start")),
    );
  }

  drawNode(node, issues) {
    const at = this.doc.layout[node.id] || (this.ghostLayout || {})[node.id] || { x: 0, y: 0 };
    const height = nodeHeight(node);
    const count = this.counts.get(node.id);
    const classes = ["fnode"];
    if (node.id === this.selected) classes.push("selected");
    if (issues) classes.push("has-issue");
    if (this.path.nodes.has(node.id)) classes.push("on-path");
    if (this.marks.has(node.id)) classes.push(`diff-${this.marks.get(node.id)}`);
    const ports = outputs(node).map(([field, label, target], i) => {
      const y = 22 + i * PORT_GAP;
      return s(
        "g",
        { class: `port-row exit-${exitKind(field)}` },
        s("text", { x: NODE_W - 12, y: y + 4, "text-anchor": "end", class: "port-label" }, clip(label, 10)),
        s("circle", { class: `port${target ? " linked" : ""}`, "data-port": field, cx: NODE_W, cy: y, r: 6 }, s("title", {}, `${node.id}: ${label}`)),
      );
    });
    return s(
      "g",
      { class: classes.join(" "), "data-id": node.id, "data-type": node.type, "data-group": TYPES[node.type]?.group, transform: `translate(${at.x},${at.y})` },
      s("rect", { class: "body", width: NODE_W, height, rx: 8 }),
      s("rect", { class: "stripe", width: 6, height, rx: 3 }),
      s("text", { x: 14, y: 18, class: "node-type" }, node.type),
      s("text", { x: 14, y: 38, class: "node-label" }, clip(node.label || node.id, ports.length > 1 ? 14 : 20)),
      s("circle", { class: "in-port", cx: 0, cy: height / 2, r: 5 }),
      ports,
      issues ? s("g", { class: "issue-badge", transform: `translate(${NODE_W - 10},-8)` }, s("circle", { r: 10 }), s("text", { "text-anchor": "middle", y: 4 }, issues.length), s("title", {}, issues.map((i) => `${i.field}: ${i.message}`).join("\n"))) : null,
      count ? s("text", { class: "run-count", x: 14, y: height + 14 }, `${count.active} here · ${count.ended} ended`) : null,
    );
  }

  drawEdges() {
    const paths = [];
    const all = edges(this.doc);
    if (this.doc.layout[this.doc.start]) all.push({ from: "__start", field: "start", to: this.doc.start });
    for (const edge of all) paths.push(this.edgePath(edge));
    replace(this.edgeLayer, paths);
  }

  portPoint(id, field) {
    if (id === "__start") return { x: this.startAt.x + 50, y: this.startAt.y + 14 };
    const node = this.node(id);
    const at = this.doc.layout[id];
    const i = outputs(node).findIndex(([f]) => f === field);
    return { x: at.x + NODE_W, y: at.y + 22 + i * PORT_GAP };
  }

  edgePath({ from, field, to }) {
    const a = this.portPoint(from, field);
    const target = this.doc.layout[to];
    const b = { x: target.x, y: target.y + nodeHeight(this.node(to)) / 2 };
    const bend = Math.max(40, Math.abs(b.x - a.x) / 2);
    const key = `${from}->${field}`;
    const classes = ["edge", `exit-${exitKind(field)}`];
    if (this.path.edges.has(`${from}>${to}`)) classes.push("on-path");
    if (this.selected === key) classes.push("selected");
    return s("path", { class: classes.join(" "), "data-edge": key, "data-to": to, d: `M${a.x},${a.y} C${a.x + bend},${a.y} ${b.x - bend},${b.y} ${b.x},${b.y}` });
  }

  applyView() {
    const { x, y, k } = this.view;
    this.viewport.setAttribute("transform", `translate(${x},${y}) scale(${k})`);
  }

  fit() {
    const place = (n) => this.doc.layout[n.id] || this.ghostLayout?.[n.id];
    const boxes = [...this.doc.nodes, ...(this.ghosts || [])].map((n) => ({ ...place(n), h: nodeHeight(n) })).filter((b) => b.x != null);
    const rect = this.svg.getBoundingClientRect();
    if (!boxes.length || !rect.width) {
      this.view = { x: 80, y: 40, k: 1 };
      return this.applyView();
    }
    const left = Math.min(...boxes.map((b) => b.x)) - 100;
    const top = Math.min(...boxes.map((b) => b.y)) - 30;
    const right = Math.max(...boxes.map((b) => b.x + NODE_W)) + 30;
    const bottom = Math.max(...boxes.map((b) => b.y + b.h)) + 30;
    const k = Math.min(1.5, Math.max(0.2, Math.min(rect.width / (right - left), rect.height / (bottom - top))));
    this.view = { k, x: -left * k, y: -top * k };
    this.applyView();
  }

  zoom(factor, about) {
    const rect = this.svg.getBoundingClientRect();
    const cx = about ? about.x : rect.width / 2;
    const cy = about ? about.y : rect.height / 2;
    const k = Math.min(2.5, Math.max(0.15, this.view.k * factor));
    this.view.x = cx - ((cx - this.view.x) * k) / this.view.k;
    this.view.y = cy - ((cy - this.view.y) * k) / this.view.k;
    this.view.k = k;
    this.applyView();
  }

  wheel(e) {
    e.preventDefault();
    const rect = this.svg.getBoundingClientRect();
    if (e.ctrlKey || e.metaKey) this.zoom(Math.exp(-e.deltaY * 0.002), { x: e.clientX - rect.left, y: e.clientY - rect.top });
    else {
      this.view.x -= e.deltaX;
      this.view.y -= e.deltaY;
      this.applyView();
    }
  }

  toWorld(clientX, clientY) {
    const rect = this.svg.getBoundingClientRect();
    return { x: (clientX - rect.left - this.view.x) / this.view.k, y: (clientY - rect.top - this.view.y) / this.view.k };
  }

  // --- pointer gestures -----------------------------------------------------------------------

  // One press: follows the pointer on the window until it is released; `move` gets the distance
  // from the press, `end` whether it travelled far enough to be a drag.
  track(e, move, end) {
    const start = { x: e.clientX, y: e.clientY };
    let dragged = false;
    const onMove = (ev) => {
      const dx = ev.clientX - start.x;
      const dy = ev.clientY - start.y;
      dragged ||= Math.hypot(dx, dy) > MOVED;
      if (dragged) move(dx, dy, ev);
    };
    const onUp = (ev) => {
      window.removeEventListener("pointermove", onMove);
      window.removeEventListener("pointerup", onUp);
      end(dragged, ev);
    };
    window.addEventListener("pointermove", onMove);
    window.addEventListener("pointerup", onUp);
  }

  pressCanvas(e) {
    if (e.button !== 0) return;
    this.svg.focus({ preventScroll: true });
    const port = e.target.closest(".port");
    const nodeEl = e.target.closest(".fnode");
    const edgeEl = e.target.closest(".edge");
    e.preventDefault();
    if (port && !this.readOnly) return this.pressPort(e, port.closest(".fnode")?.dataset.id || "__start", port.dataset.port);
    if (nodeEl) return this.pressNode(e, nodeEl);
    if (edgeEl) return this.select(edgeEl.dataset.edge);
    const view = { ...this.view };
    this.track(
      e,
      (dx, dy) => {
        this.view.x = view.x + dx;
        this.view.y = view.y + dy;
        this.applyView();
      },
      (dragged) => dragged || this.select(null),
    );
  }

  pressNode(e, nodeEl) {
    const id = nodeEl.dataset.id;
    if (!this.node(id)) return;
    const from = { ...this.doc.layout[id] };
    let checkpointed = false;
    this.track(
      e,
      (dx, dy) => {
        if (this.readOnly) return;
        if (!checkpointed) this.checkpoint();
        checkpointed = true;
        this.doc.layout[id] = { x: Math.round(from.x + dx / this.view.k), y: Math.round(from.y + dy / this.view.k) };
        nodeEl.setAttribute("transform", `translate(${this.doc.layout[id].x},${this.doc.layout[id].y})`);
        this.drawEdges();
      },
      (dragged) => {
        if (dragged) this.dirty = true;
        this.select(id);
      },
    );
  }

  pressPort(e, id, field) {
    const a = id === "__start" ? this.portPoint(id) : this.portPoint(id, field);
    const line = s("path", { class: "edge pending" });
    this.edgeLayer.append(line);
    this.track(
      e,
      (dx, dy, ev) => {
        const b = this.toWorld(ev.clientX, ev.clientY);
        line.setAttribute("d", `M${a.x},${a.y} L${b.x},${b.y}`);
      },
      (dragged, ev) => {
        line.remove();
        const target = document.elementFromPoint(ev.clientX, ev.clientY)?.closest(".fnode")?.dataset.id;
        if (!dragged || !target || !this.node(target)) return;
        this.connect(id, field, target);
      },
    );
  }

  connect(id, field, target) {
    if (id === "__start") this.change((doc) => (doc.start = target));
    else this.change(() => setOutput(this.node(id), field, target));
    this.say(`Connected ${id} ${field} to ${target}.`);
  }

  pressPalette(e, type) {
    if (this.readOnly || e.button !== 0) return;
    e.preventDefault();
    const ghost = h("div", { class: "palette-ghost" }, type);
    this.track(
      e,
      (dx, dy, ev) => {
        if (!ghost.isConnected) document.body.append(ghost);
        ghost.style.transform = `translate(${ev.clientX + 8}px, ${ev.clientY + 8}px)`;
      },
      (dragged, ev) => {
        ghost.remove();
        const rect = this.svg.getBoundingClientRect();
        if (!dragged) {
          const center = this.toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2);
          return this.addNode(type, { x: center.x - NODE_W / 2 + this.doc.nodes.length * 8, y: center.y - NODE_H / 2 + this.doc.nodes.length * 8 });
        }
        const inside = ev.clientX >= rect.left && ev.clientX <= rect.right && ev.clientY >= rect.top && ev.clientY <= rect.bottom;
        if (inside) {
          const at = this.toWorld(ev.clientX, ev.clientY);
          this.addNode(type, { x: at.x - NODE_W / 2, y: at.y - NODE_H / 2 });
        }
      },
    );
  }

  key(e) {
    if (e.target.closest("input, textarea, select")) return;
    const mod = e.ctrlKey || e.metaKey;
    const k = e.key.toLowerCase();
    const actions = {
      z: mod && (() => (e.shiftKey ? this.redo() : this.undo())),
      y: mod && (() => this.redo()),
      c: mod && (() => this.copy()),
      v: mod && (() => this.paste()),
      s: mod && (() => this.save()),
      delete: () => this.deleteSelected(),
      backspace: () => this.deleteSelected(),
      escape: () => this.select(null),
      f: !mod && (() => this.fit()),
      l: !mod && (() => this.relayout()),
      "+": () => this.zoom(1.25),
      "=": () => this.zoom(1.25),
      "-": () => this.zoom(0.8),
    };
    const action = actions[k];
    if (!action) return;
    e.preventDefault();
    action();
  }

  // --- selection and the side panel ------------------------------------------------------------

  select(id) {
    this.selected = id;
    this.lastKey = null;
    for (const el of this.svg.querySelectorAll(".selected")) el.classList.remove("selected");
    if (id) this.svg.querySelector(id.includes("->") ? `[data-edge="${CSS.escape(id)}"]` : `.fnode[data-id="${CSS.escape(id)}"]`)?.classList.add("selected");
    this.panel();
  }

  panel() {
    const node = this.selected && !this.selected.includes("->") ? this.node(this.selected) : null;
    const key = node ? `node:${node.id}` : "flow";
    // the panel being typed in stays (its inputs keep focus); it is rebuilt for another subject
    if (this.panelKey === key && this.panelView) return this.panelView.refresh();
    this.panelKey = key;
    this.panelView = node ? new NodePanel(this, node) : new FlowPanel(this);
    replace(this.side, this.panelView.el);
  }

  // --- the API ---------------------------------------------------------------------------------

  async validate() {
    try {
      const { issues } = await api("/flows/validate", { method: "POST", body: this.document() });
      this.setIssues(issues);
    } catch (error) {
      this.say(errorText(error));
    }
  }

  // Issues from the API; a node the schema names by position ("#3") is named by its id.
  setIssues(issues) {
    const named = issues.map((issue) => {
      const index = /^#(\d+)$/.exec(issue.node_id || "");
      return index && this.doc.nodes[Number(index[1])] ? { ...issue, node_id: this.doc.nodes[Number(index[1])].id } : issue;
    });
    if (JSON.stringify(named) === JSON.stringify(this.issues)) return;
    this.issues = named;
    this.render();
  }

  // What is saved: the document with positions of the nodes it has (stale ones dropped).
  document() {
    const doc = structuredClone(this.doc);
    const layout = {};
    for (const node of doc.nodes) if (doc.layout[node.id]) layout[node.id] = doc.layout[node.id];
    doc.layout = layout;
    return doc;
  }

  async save() {
    if (this.readOnly) return false;
    const body = this.document();
    try {
      const path = this.flowId ? `/flows/${this.flowId}` : "/flows";
      this.flow = await api(path + qs({ allow_issues: "true" }), { method: this.flowId ? "PUT" : "POST", body });
    } catch (error) {
      this.say(`Not saved: ${errorText(error)}`);
      return false;
    }
    this.dirty = false;
    await this.validate();
    const count = this.issues.length;
    this.say(count ? `Saved as a draft with ${count} problem${count === 1 ? "" : "s"}: publishing waits until they are fixed.` : "Saved.");
    if (!this.flowId) {
      this.flowId = this.flow.id;
      history.replaceState(null, "", `#/flows/${this.flowId}/edit`);
    }
    return true;
  }

  async publish() {
    if (!(await this.save())) return;
    try {
      const note = this.note.value.trim();
      const version = await api(`/flows/${this.flowId}/publish`, { method: "POST", body: note ? { note } : undefined });
      this.note.value = "";
      this.flow = await api(`/flows/${this.flowId}`);
      this.say(`Published version ${version.version}.`);
      this.tools.loaded();
    } catch (error) {
      if (error.details) this.setIssues(error.details);
      this.say(`Publish refused: ${errorText(error)}`);
    }
  }

  // The company's synced message templates, fetched once for the template picker; none when the
  // role may not read them or the company has no Cloud API number.
  loadTemplates() {
    this.templatesLoaded ||= api("/templates")
      .then((page) => (this.templates = page.data))
      .catch(() => (this.templates = []));
    return this.templatesLoaded;
  }

  async loadCounts() {
    if (!this.flowId || !this.flow?.current_version) return;
    try {
      const rows = await api(`/flows/${this.flowId}/node-runs`);
      this.counts = new Map();
      for (const row of rows.filter((r) => r.version === this.flow.current_version)) {
        const count = this.counts.get(row.node_id) || { active: 0, ended: 0 };
        if (inFlight(row.status)) count.active += row.runs;
        else count.ended += row.runs;
        this.counts.set(row.node_id, count);
      }
      this.render();
    } catch (error) {
      this.say(errorText(error));
    }
  }

  say(text) {
    this.status.textContent = text;
  }

  destroy() {
    this.el.remove();
  }
}
