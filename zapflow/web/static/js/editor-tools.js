// The editor's tools under the canvas: the document as JSON text (edits applied back to the
// canvas), the simulator (POST /flows/{id}/simulate on typed replies; the path it took is lit on
// the canvas, each step with the variables after it) and the versions (open one read-only,
// compare two: added, changed and removed nodes marked).
import { all, api } from "./api.js";
import { h, replace } from "./dom.js";
import { dateTime, describeStep, errorText } from "./format.js";
import { NODE_H, NODE_W, autoLayout, compare, inFlight } from "./flowmodel.js";

const TABS = [["text", "Text (JSON)"], ["simulate", "Simulate"], ["versions", "Versions"]];

export class EditorTools {
  constructor(editor) {
    this.editor = editor;
    this.tab = "simulate";
    this.tabs = h("div", { class: "tool-tabs", role: "tablist" }, TABS.map(([name, label]) =>
      h("button", { type: "button", role: "tab", "data-tab": name, onclick: () => this.show(name) }, label)));
    this.panes = {
      text: this.textPane(),
      simulate: this.simulatePane(),
      versions: (this.versions = h("div", { class: "versions" })),
    };
    this.el = h("section", { class: "editor-tools", "aria-label": "Tools" }, this.tabs, Object.values(this.panes));
    this.show(this.tab);
  }

  show(name) {
    this.tab = name;
    for (const button of this.tabs.children) button.setAttribute("aria-selected", String(button.dataset.tab === name));
    for (const [pane, el] of Object.entries(this.panes)) el.hidden = pane !== name;
    this.render();
  }

  loaded() {
    this.loadVersions();
    this.render();
  }

  render() {
    if (this.tab === "text" && document.activeElement !== this.text && this.editor.doc) {
      this.text.value = JSON.stringify(this.editor.document(), null, 2);
    }
  }

  // --- text ---------------------------------------------------------------------------------

  textPane() {
    this.text = h("textarea", { class: "doc-text", rows: 14, spellcheck: "false", "aria-label": "Flow document (JSON)" });
    this.textIssue = h("p", { role: "alert" });
    return h("div", {}, this.text, this.textIssue, h("button", { type: "button", onclick: () => this.applyText() }, "Apply text"));
  }

  applyText() {
    let doc;
    try {
      doc = JSON.parse(this.text.value);
      if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new Error("a flow document is an object");
    } catch (error) {
      this.textIssue.textContent = `Not applied: ${error.message}`;
      return;
    }
    this.textIssue.textContent = "";
    const editor = this.editor;
    editor.checkpoint();
    editor.dirty = true;
    editor.setDocument(doc);
  }

  // --- simulator -------------------------------------------------------------------------------

  simulatePane() {
    this.replies = h("textarea", { rows: 3, id: "sim-replies", placeholder: "Maria\n12000" });
    this.transcript = h("div", { class: "sim-result" });
    return h("div", { class: "simulator" },
      h("div", { class: "field" }, h("label", { for: "sim-replies" }, "Customer replies, one per line (a line with - plays no answer; a button's id plays a tap)"), this.replies),
      h("button", { type: "button", class: "primary", onclick: () => this.simulate() }, "Run simulation"),
      h("button", { type: "button", onclick: () => this.clearPath() }, "Clear path"),
      this.transcript);
  }

  async simulate() {
    const editor = this.editor;
    if (!editor.readOnly && !(await editor.save())) return;
    const lines = this.replies.value.split("\n").filter((line) => line.trim() !== "");
    const body = { replies: lines.map((line) => (line.trim() === "-" ? null : line)) };
    if (editor.version) body.version = editor.version;
    let result;
    try {
      result = await api(`/flows/${editor.flowId}/simulate`, { method: "POST", body });
    } catch (error) {
      if (error.details) editor.setIssues(error.details);
      replace(this.transcript, h("p", { role: "alert" }, errorText(error)));
      return;
    }
    this.showResult(result);
  }

  showResult(result) {
    const editor = this.editor;
    const nodes = result.transcript.map((step) => step.node);
    const steps = nodes.slice(1).map((to, i) => [nodes[i], to]).filter(([from, to]) => from !== to);
    editor.path = { nodes: new Set(nodes), edges: new Set(steps.map(([from, to]) => `${from}>${to}`)) };
    editor.render();
    const variables = { ...(editor.doc.variables || {}) };
    const rows = result.transcript.map(({ node, event, ...data }) => {
      if (data.variable !== undefined && data.value !== undefined) variables[data.variable] = data.value;
      for (const [name, value] of Object.entries(data.saved || {})) variables[name] = value;
      return h("li", { "data-event": event, "data-node": node },
        h("button", { type: "button", class: "link", onclick: () => editor.select(node) }, node), ` ${event} `,
        h("span", {}, describeStep(data)),
        h("div", { class: "muted step-variables" }, Object.entries(variables).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(" · ")));
    });
    replace(this.transcript,
      h("p", { class: "sim-outcome", "data-status": result.status }, h("strong", {}, "Outcome: "), result.status,
        result.current_node ? ` at ${result.current_node}` : "", result.error ? ` · ${result.error}` : ""),
      this.tapChoices(result),
      h("ol", { class: "transcript-steps" }, rows),
      h("p", { class: "muted" }, `Variables: ${JSON.stringify(result.variables)}`));
  }

  // a flow waiting after buttons or a list: tapping one plays the customer's tap (its id, as the
  // engine reads a button_reply) and runs the simulation again
  tapChoices(result) {
    const last = result.status === "waiting" ? result.sent[result.sent.length - 1] : null;
    const choices = last && last.interactive ? interactiveChoices(last.interactive) : [];
    if (!choices.length) return null;
    return h("p", { class: "choices sim-taps" }, h("span", { class: "muted" }, "Tap: "),
      choices.map(({ id, title }) => h("button", {
        type: "button", class: "chip", "data-choice": id, title: `plays a tap on ${id}`,
        onclick: () => {
          this.replies.value = `${this.replies.value.trimEnd()}\n${id}`.trimStart();
          this.simulate();
        },
      }, title)));
  }

  clearPath() {
    this.editor.path = { nodes: new Set(), edges: new Set() };
    replace(this.transcript);
    this.editor.render();
  }

  // --- versions --------------------------------------------------------------------------------

  async loadVersions() {
    const editor = this.editor;
    if (!editor.flowId) return replace(this.versions, h("p", { class: "muted" }, "Save the flow to see its versions."));
    let rows, runs;
    try {
      [rows, runs] = await Promise.all([all(`/flows/${editor.flowId}/versions`), api(`/flows/${editor.flowId}/node-runs`)]);
    } catch (error) {
      return replace(this.versions, h("p", { role: "alert" }, errorText(error)));
    }
    const running = new Map(); // version → runs in flight on it
    for (const row of runs.filter((r) => inFlight(r.status))) running.set(row.version, (running.get(row.version) || 0) + row.runs);
    const options = [["draft", "Draft"], ...rows.map((v) => [String(v.version), `v${v.version}`])];
    const pick = (label, value) => h("select", { "aria-label": label }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
    const before = pick("Compare from", rows[1] ? String(rows[1].version) : "draft");
    const after = pick("Compare to", rows[0] ? String(rows[0].version) : "draft");
    replace(this.versions,
      editor.readOnly ? h("p", { class: "read-only-note" }, h("strong", {}, editor.readOnlyNote), " ",
        h("button", { type: "button", onclick: () => this.backToDraft() }, "Back to the draft")) : null,
      rows.length ? null : h("p", { class: "muted" }, "No published version yet."),
      h("ul", { class: "version-list" }, rows.map((v) => h("li", { "data-version": v.version },
        h("strong", {}, `v${v.version}`), ` published ${dateTime(v.published_at)}${v.version === editor.flow?.current_version ? " · live" : ""} `,
        h("span", { class: "in-flight" }, `${running.get(v.version) || 0} in flight`), " ",
        v.note ? h("q", { class: "version-note" }, v.note) : null, " ",
        h("button", { type: "button", onclick: () => this.open(v.version) }, `Open v${v.version}`)))),
      rows.length ? h("div", { class: "compare" }, before, " → ", after, h("button", { type: "button", onclick: () => this.compare(before.value, after.value) }, "Compare")) : null);
  }

  async definition(version) {
    if (version === "draft") return this.draft || this.editor.document();
    return (await api(`/flows/${this.editor.flowId}/versions/${version}`)).definition;
  }

  enterReadOnly(doc, note, version = null) {
    const editor = this.editor;
    if (!editor.readOnly) this.draft = editor.document();
    editor.readOnly = true;
    editor.readOnlyNote = note;
    editor.version = version;
    editor.el.classList.add("read-only");
    editor.selected = null;
    editor.panelKey = null;
    editor.setDocument(doc);
    this.loadVersions();
  }

  async open(version) {
    try {
      this.editor.marks = new Map();
      this.editor.ghosts = [];
      this.enterReadOnly(structuredClone(await this.definition(String(version))), `Version ${version}, read-only.`, version);
    } catch (error) {
      this.editor.say(errorText(error));
    }
  }

  async compare(from, to) {
    let before, after;
    try {
      [before, after] = await Promise.all([this.definition(from), this.definition(to)]);
    } catch (error) {
      return this.editor.say(errorText(error));
    }
    const diff = compare(before, after);
    const editor = this.editor;
    editor.marks = new Map([...diff.added.map((id) => [id, "added"]), ...diff.changed.map((id) => [id, "changed"]),
      ...diff.removed.map((id) => [id, "removed"])]);
    // removed nodes are drawn where they were, as ghosts with no outputs
    editor.ghosts = before.nodes.filter((n) => diff.removed.includes(n.id)).map((n) => ({ id: n.id, type: n.type, label: n.label }));
    const doc = structuredClone(after);
    editor.ghostLayout = ghostPlaces(editor.ghosts, before, doc);
    const label = (v) => (v === "draft" ? "the draft" : `v${v}`);
    this.enterReadOnly(doc, `Comparing ${label(from)} → ${label(to)}: ${diff.added.length} added, ${diff.changed.length} changed, ${diff.removed.length} removed (read-only).`, to === "draft" ? null : Number(to));
  }

  backToDraft() {
    const editor = this.editor;
    editor.readOnly = false;
    editor.version = null;
    editor.marks = new Map();
    editor.ghosts = [];
    editor.el.classList.remove("read-only");
    editor.panelKey = null;
    editor.setDocument(this.draft);
    this.draft = null;
    this.loadVersions();
  }
}

// Where removed nodes are drawn: where the older version had them, else in a row under the
// newer version's nodes.
function ghostPlaces(ghosts, before, after) {
  const placed = { ...autoLayout(after), ...(after.layout || {}) };
  const bottom = Math.max(0, ...Object.values(placed).map((p) => p.y)) + NODE_H + 80;
  return Object.fromEntries(ghosts.map((ghost, i) => [ghost.id, before.layout?.[ghost.id] || { x: 40 + i * (NODE_W + 40), y: bottom }]));
}

// reply buttons' and list rows' {id, title}, from the interactive spec a flow sends
// ({type: "button", buttons} or {type: "list", sections: [{rows}]}, flows/engine.py)
function interactiveChoices(interactive) {
  const rows = (interactive.sections || []).flatMap((section) => section.rows || []);
  return [...(interactive.buttons || []), ...rows].filter((choice) => choice && choice.id);
}
