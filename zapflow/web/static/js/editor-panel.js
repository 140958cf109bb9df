// The editor's side panel: the selected node's fields, each with the input its kind needs
// (templates and expressions with a picker of the variables defined upstream, durations, choices,
// key/value pairs, a condition's branches, every output's target, a send_template's pick of the
// company's synced templates), or, with nothing selected, the flow's own fields. The API's issues are shown under the field they name.
import { h, replace } from "./dom.js";
import { TYPES, offeredChoices, outputs, renameNode, setOutput, upstreamVariables } from "./flowmodel.js";

let uid = 0;
const PLACEHOLDER = { duration: "10m, 1d, 2w", choices: "id: Title (one per line)", pairs: "key: value (one per line)", list: "one per line", expression: "budget >= 5000" };

function toText(kind, value) {
  if (value == null) return "";
  if (kind === "list") return value.join("\n");
  if (kind === "choices") return value.map((c) => `${c.id}: ${c.title}`).join("\n");
  if (kind === "pairs") return Object.entries(value).map(([k, v]) => `${k}: ${v}`).join("\n");
  return String(value);
}

function fromText(kind, text) {
  if (text.trim() === "") return undefined;
  const lines = text.split("\n").filter((line) => line.trim());
  const pair = (line) => {
    const at = line.indexOf(":");
    return at < 0 ? [line.trim(), ""] : [line.slice(0, at).trim(), line.slice(at + 1).trim()];
  };
  if (kind === "number") return Number(text);
  if (kind === "list") return lines.map((line) => line.trim());
  if (kind === "choices") return lines.map((line) => pair(line)).map(([id, title]) => ({ id, title: title || id }));
  if (kind === "pairs") return Object.fromEntries(lines.map(pair));
  return text;
}

// Issues of one node whose field is `name` or inside it (`branches.0.when` is in `branches`).
function issuesFor(editor, nodeId, name) {
  return editor.issues.filter((i) => i.node_id === nodeId && (i.field === name || i.field.startsWith(`${name}.`)));
}

function issueText(issues) {
  return issues.map((i) => i.message).join("; ");
}

export class NodePanel {
  constructor(editor, node) {
    this.editor = editor;
    this.id = node.id;
    this.inputs = []; // [name, kind, control, issue element]
    const spec = TYPES[node.type] || { fields: [] };
    this.problems = h("ul", { class: "panel-problems", role: "alert" });
    this.branches = h("div", { class: "branches" });
    this.outputs = h("div", { class: "outputs" });
    const idInput = h("input", { value: node.id, spellcheck: "false", onchange: (e) => this.rename(e.target.value.trim()) });
    this.el = h(
      "form",
      { class: "node-panel", onsubmit: (e) => e.preventDefault() },
      h("fieldset", { disabled: editor.readOnly },
        h("h3", {}, node.type, " ", h("span", { class: "muted" }, TYPES[node.type]?.group || "")),
        this.problems,
        this.row("id", "id", idInput, null),
        this.control("label", "text"),
        spec.fields.map(([name, kind, options]) => (kind === "branches" ? this.branchEditor() : this.control(name, kind, options))),
        h("h4", {}, "Outputs"),
        this.outputs,
        h("div", { class: "panel-actions" },
          h("button", { type: "button", onclick: () => editor.change((doc) => (doc.start = this.id)) }, "Make it the start"),
          h("button", { type: "button", class: "danger", onclick: () => editor.deleteSelected() }, "Delete node")),
      ),
    );
    this.refresh();
  }

  node() {
    return this.editor.node(this.id);
  }

  row(name, label, control, picker) {
    control.id ||= `p${++uid}`;
    control.dataset.field = name;
    const issue = h("p", { class: "field-issue", role: "alert" });
    if (name !== "id") this.inputs.push([name, control.dataset.kind, control, issue]);
    else this.idIssue = issue;
    return h("div", { class: "field", "data-field": name }, h("label", { for: control.id }, label), control, picker, issue);
  }

  control(name, kind, options = {}) {
    const set = (value) =>
      this.editor.change(() => {
        const node = this.node();
        if (value === undefined || (typeof value === "number" && Number.isNaN(value))) delete node[name];
        else node[name] = value;
      }, `${this.id}.${name}`);
    let control;
    if (kind === "select") {
      control = h("select", { onchange: (e) => set(e.target.value || undefined) }, h("option", { value: "" }, "(default)"), options.options.map((o) => h("option", { value: o }, o)));
    } else if (["template", "list", "choices", "pairs"].includes(kind)) {
      control = h("textarea", { rows: kind === "template" ? 3 : 2, placeholder: PLACEHOLDER[kind] || "", oninput: (e) => set(fromText(kind, e.target.value)) });
    } else {
      control = h("input", { type: kind === "number" ? "number" : "text", spellcheck: "false", placeholder: PLACEHOLDER[kind] || "", oninput: (e) => set(fromText(kind, e.target.value)) });
      const list = this.suggestions(kind, name);
      if (list) control.setAttribute("list", list.id);
      control.dataset.list = list ? "yes" : "";
      if (list) this.lists = [...(this.lists || []), list];
    }
    control.dataset.kind = kind;
    control.required = Boolean(options.required);
    let picker = kind === "template" || kind === "expression" ? this.variablePicker(control, kind) : null;
    if (kind === "template-name") picker = this.templatePicker();
    if (name === "choices" && this.node()?.type === "ask") picker = this.offeredIds();
    return [this.row(name, options.required ? `${name} *` : name, control, picker), (this.lists || []).splice(0)];
  }

  // Known values for a field: the company's funnels and stages, its users.
  suggestions(kind, name) {
    const ctx = this.editor.ctx || {};
    let values = [];
    if (name === "funnel") values = (ctx.funnels || []).map((f) => f.name);
    else if (name === "stage") values = (ctx.funnels || []).flatMap((f) => (f.stages || []).map((s) => s.name));
    else if (kind === "user") values = [...(ctx.users?.values() || [])].map((u) => u.id);
    if (!values.length) return null;
    return h("datalist", { id: `l${++uid}` }, [...new Set(values)].map((v) => h("option", { value: v })));
  }

  // "Insert a variable": the names defined upstream of this node, into a template as
  // {{name}}, into an expression as the bare name.
  variablePicker(control, kind) {
    const picker = h("select", {
      class: "variable-picker",
      "aria-label": `Insert a variable into ${control.dataset.field}`,
      onchange: (e) => {
        if (!e.target.value) return;
        const name = e.target.value;
        control.value += kind === "template" ? `{{${name}}}` : `${control.value && !control.value.endsWith(" ") ? " " : ""}${name}`;
        control.dispatchEvent(new Event("input"));
        e.target.value = "";
      },
    });
    this.pickers = [...(this.pickers || []), picker];
    return picker;
  }

  // "Pick a synced template": the company's templates (GET /templates) set the node's name and
  // language together; a template Meta has not approved is marked. A company without synced
  // templates (Evolution numbers only) types the name.
  templatePicker() {
    const picker = h("select", {
      class: "template-picker",
      "aria-label": "Pick a synced template",
      onchange: (e) => {
        const chosen = this.editor.templates?.[Number(e.target.value)];
        e.target.value = "";
        if (chosen) this.editor.change(() => Object.assign(this.node(), { name: chosen.name, language: chosen.language }));
      },
    });
    const note = h("p", { class: "muted template-note" });
    this.templateControls = { picker, note };
    this.editor.loadTemplates().then(() => this.drawTemplates());
    return [picker, note];
  }

  drawTemplates() {
    const { picker, note } = this.templateControls;
    const templates = this.editor.templates || [];
    picker.hidden = !templates.length;
    replace(picker, h("option", { value: "" }, "Pick a synced template…"), templates.map((t, i) =>
      h("option", { value: i }, `${t.name} · ${t.language}${t.status === "APPROVED" ? "" : ` · ${t.status}: not approved`}`)));
    const node = this.node();
    const used = node && templates.find((t) => t.name === node.name && t.language === (node.language || "en_US"));
    note.textContent = !templates.length ? "No synced templates (Cloud API numbers only): type the template's name."
      : used && used.status !== "APPROVED" ? `${used.name} (${used.language}) is ${used.status}: Meta refuses to send it until approved.` : "";
  }

  // An ask's choices beside the buttons sent before it: their ids and titles shown, a tap on
  // one the ask lists neither way marked (it would be an invalid answer), and one click to list
  // their ids.
  offeredIds() {
    const note = h("p", { class: "muted offered-choices" });
    const use = h("button", { type: "button", onclick: () => this.useOfferedIds() }, "Use the buttons' ids");
    this.offered = { note, use };
    return [note, use];
  }

  useOfferedIds() {
    const offered = offeredChoices(this.editor.doc, this.id);
    if (offered) this.editor.change(() => Object.assign(this.node(), { validation: "choice", choices: offered.choices.map((c) => c.id) }));
  }

  drawOffered(node) {
    const { note, use } = this.offered;
    const offered = offeredChoices(this.editor.doc, node.id);
    use.hidden = !offered;
    if (!offered) return (note.textContent = "No buttons or list upstream: a choice is read from what is typed.");
    const listed = new Set((node.choices || []).map((c) => c.toLowerCase()));
    const unread = offered.choices.filter((c) => !listed.has(c.id.toLowerCase()) && !listed.has(c.title?.toLowerCase()));
    note.textContent = `${offered.from} offers ${offered.choices.map((c) => `${c.id} (${c.title})`).join(", ")}.` +
      (unread.length ? ` Not listed here, so a tap is refused: ${unread.map((c) => c.id).join(", ")}.` : "");
  }

  branchEditor() {
    return h("div", { class: "field", "data-field": "branches" }, h("h4", {}, "Branches (the first whose expression holds is taken)"), this.branches,
      (this.branchIssue = h("p", { class: "field-issue", role: "alert" })),
      h("button", { type: "button", onclick: () => this.editor.change(() => (this.node().branches ||= []).push({ when: "", next: "" })) }, "Add branch"));
  }

  drawBranches(node) {
    const rows = (node.branches || []).map((branch, i) => {
      const input = h("input", { value: branch.when, spellcheck: "false", placeholder: PLACEHOLDER.expression, "aria-label": `Branch ${i + 1} expression`,
        oninput: (e) => this.editor.change(() => (this.node().branches[i].when = e.target.value), `${this.id}.branches.${i}`) });
      const issue = issueText(issuesFor(this.editor, this.id, `branches.${i}`));
      return h("div", { class: "branch", "data-branch": i }, input,
        h("button", { type: "button", "aria-label": `Remove branch ${i + 1}`, onclick: () => this.editor.change(() => this.node().branches.splice(i, 1)) }, "×"),
        h("p", { class: "field-issue", role: "alert" }, issue));
    });
    const focused = this.branches.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
    if (this.branchCount === rows.length && focused) {
      // typing in a branch: keep its input, update only the messages
      rows.forEach((row, i) => (this.branches.children[i].lastChild.textContent = row.lastChild.textContent));
      return;
    }
    this.branchCount = rows.length;
    replace(this.branches, rows);
  }

  drawOutputs(node) {
    const others = this.editor.doc.nodes.filter((n) => n.id !== node.id).map((n) => n.id);
    replace(this.outputs, outputs(node).map(([field, label, target]) => {
      const control = h("select", { onchange: (e) => this.editor.change(() => setOutput(this.node(), field, e.target.value || null)) },
        h("option", { value: "" }, "— not connected —"), others.map((id) => h("option", { value: id, selected: id === target }, id)));
      control.id = `p${++uid}`;
      return h("div", { class: "field", "data-field": field }, h("label", { for: control.id }, label), control,
        h("p", { class: "field-issue", role: "alert" }, issueText(issuesFor(this.editor, node.id, field))));
    }));
  }

  rename(to) {
    if (!to || to === this.id) return;
    if (this.editor.node(to)) return (this.idIssue.textContent = `another node is called ${to}`);
    const from = this.id;
    this.editor.selected = to; // the panel is rebuilt for the renamed node
    this.editor.change((doc) => renameNode(doc, from, to));
  }

  // The values and messages, after any change (undo, an issue arriving); the input being typed
  // in keeps its text and caret.
  refresh() {
    const node = this.node();
    if (!node) return;
    for (const [name, kind, control, issue] of this.inputs) {
      if (control !== document.activeElement) control.value = toText(kind, node[name]);
      issue.textContent = issueText(issuesFor(this.editor, node.id, name));
      control.setAttribute("aria-invalid", issue.textContent ? "true" : "false");
    }
    if (this.templateControls) this.drawTemplates();
    if (this.offered) this.drawOffered(node);
    const variables = upstreamVariables(this.editor.doc, node.id);
    for (const picker of this.pickers || []) {
      replace(picker, h("option", { value: "" }, "Insert a variable…"), variables.map((v) => h("option", { value: v }, v)));
    }
    if (node.type === "condition") {
      this.drawBranches(node);
      this.branchIssue.textContent = issueText(issuesFor(this.editor, node.id, "branches").filter((i) => i.field === "branches"));
    }
    this.drawOutputs(node);
    const shown = new Set(["label", ...this.inputs.map(([name]) => name), ...outputs(node).map(([f]) => f), "branches"]);
    const rest = this.editor.issues.filter((i) => i.node_id === node.id && !shown.has(i.field.split(".")[0]));
    this.idIssue.textContent = issueText(rest.filter((i) => i.field === "id"));
    replace(this.problems, rest.filter((i) => i.field !== "id").map((i) => h("li", {}, `${i.field}: ${i.message}`)));
  }
}

// With nothing selected: the flow's name, description, variables and triggers, and every problem.
export class FlowPanel {
  constructor(editor) {
    this.editor = editor;
    const doc = editor.doc;
    const text = (name, value, rows) => {
      const control = rows ? h("textarea", { rows, spellcheck: "false" }) : h("input", {});
      control.value = value;
      control.id = `p${++uid}`;
      return control;
    };
    this.name = text("name", doc.name || "");
    this.name.oninput = (e) => editor.change((d) => (d.name = e.target.value), "flow.name");
    this.description = text("description", doc.description || "", 2);
    this.description.oninput = (e) => editor.change((d) => (e.target.value ? (d.description = e.target.value) : delete d.description), "flow.description");
    this.variables = this.json("variables", doc.variables || {});
    this.triggers = this.json("triggers", doc.triggers || []);
    this.problems = h("ul", { class: "panel-problems" });
    const field = (label, control, extra) => h("div", { class: "field" }, h("label", { for: control.id }, label), control, extra);
    this.el = h("form", { class: "flow-panel", onsubmit: (e) => e.preventDefault() },
      h("fieldset", { disabled: editor.readOnly },
        h("h3", {}, "Flow"),
        field("Flow name", this.name),
        field("Description", this.description),
        field("Variables (JSON: name → starting value)", this.variables.control, this.variables.issue),
        field("Triggers (JSON list)", this.triggers.control, this.triggers.issue)),
      h("h4", {}, "Problems"), this.problems);
    this.refresh();
  }

  json(name, value) {
    const control = h("textarea", { rows: 3, spellcheck: "false" });
    control.id = `p${++uid}`;
    control.value = JSON.stringify(value);
    const issue = h("p", { class: "field-issue", role: "alert" });
    control.oninput = () => {
      let parsed;
      try {
        parsed = control.value.trim() ? JSON.parse(control.value) : undefined;
      } catch {
        issue.textContent = "not valid JSON yet";
        return;
      }
      issue.textContent = "";
      this.editor.change((d) => (parsed === undefined ? delete d[name] : (d[name] = parsed)), `flow.${name}`);
    };
    return { control, issue };
  }

  refresh() {
    const doc = this.editor.doc;
    if (this.name !== document.activeElement) this.name.value = doc.name || "";
    const problems = this.editor.issues;
    replace(this.problems, problems.length ? problems.map((i) =>
      h("li", {}, i.node_id ? h("button", { type: "button", class: "link", onclick: () => this.editor.select(i.node_id) }, i.node_id) : "flow", ` ${i.field}: ${i.message}`))
      : h("li", { class: "muted" }, "None: the flow can be published."));
  }
}
