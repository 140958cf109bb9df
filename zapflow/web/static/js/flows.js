// Flows: the list, new flows (empty or from a starter template, opened in the visual editor,
// editor.js, loaded only when opened), one flow as a diagram (Mermaid text from the API, drawn by the vendored
// Mermaid, which loads only here), publishing the draft, a simulation on scripted replies with
// its transcript, and the flow's runs (cancel one that is still going).
import { all, api, qs } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { dateTime, describeStep, errorText } from "./format.js";
import { t } from "./i18n.js";

const MERMAID = "vendor/mermaid-11.17.2/mermaid.min.js";
const ACTIVE_RUN = new Set(["running", "waiting"]);
let mermaidLoaded = null;
let diagrams = 0;

function loadMermaid() {
  mermaidLoaded ||= new Promise((resolve, reject) => {
    const script = h("script", { src: MERMAID });
    script.onload = () => {
      window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
      resolve(window.mermaid);
    };
    script.onerror = () => {
      mermaidLoaded = null;
      reject(new Error(t("flows.diagramUnavailable")));
    };
    document.head.append(script);
  });
  return mermaidLoaded;
}

export class FlowsView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.list = h("ul", { class: "flow-list" });
    this.detail = h("div", { class: "flow-detail" });
    this.el = h(
      "div",
      { class: "flows" },
      h("nav", { class: "pane flow-pane", "aria-labelledby": "flows-h" }, h("h2", { id: "flows-h" }, t("flows.title")), this.newFlow(), this.list),
      h("section", { class: "flow-main", "aria-live": "polite" }, this.detail),
    );
    root.append(this.el);
    this.loadList();
  }

  destroy() {
    this.editor?.destroy();
    this.el.remove();
  }

  newFlow() {
    const from = select([["empty", t("flows.empty")], ["lead_qualification", "Lead qualification"], ["appointment_booking", "Appointment booking"],
      ["order_status", "Order status (HTTP request)"], ["nps_survey", "NPS survey"], ["faq_ai", "FAQ with AI fallback"]], "empty");
    return h("form", { class: "new-flow", onsubmit: (e) => (e.preventDefault(), (location.hash = `#/flows/new/${from.value}`)) },
      field(t("flows.template"), from), h("button", { type: "submit" }, t("flows.new")));
  }

  // The visual editor, full width; `template` for a new flow ("new" as the id).
  async openEditor(flowId, template) {
    this.el.classList.add("editing");
    replace(this.detail, h("p", { class: "placeholder" }, t("common.loading")));
    const [{ FlowEditor }, { TEMPLATES }] = await Promise.all([import("./editor.js"), import("./flow-templates.js")]);
    replace(this.detail);
    this.editor?.destroy();
    const isNew = flowId === "new";
    this.editor = new FlowEditor(this.detail, { flowId: isNew ? null : flowId, template: isNew ? TEMPLATES[template]?.doc : null, ctx: this.ctx });
  }

  async loadList() {
    try {
      this.flows = await all("/flows");
    } catch (error) {
      replace(this.list, h("li", { role: "alert" }, errorText(error)));
      return;
    }
    replace(
      this.list,
      this.flows.length ? null : h("li", { class: "muted" }, t("flows.none")),
      this.flows.map((flow) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: `#/flows/${flow.id}`, "aria-current": flow.id === this.flowId ? "true" : null },
            h("strong", {}, flow.name),
            h("span", { class: "muted" }, ` ${t(`flowStatus.${flow.status}`)}${flow.current_version ? ` · v${flow.current_version}` : ""}`),
          ),
        ),
      ),
    );
  }

  async open(flowId, extra) {
    this.flowId = flowId;
    this.editor?.destroy();
    this.editor = null;
    if (flowId === "new" || (flowId && extra === "edit")) return this.openEditor(flowId, extra);
    this.el.classList.remove("editing");
    if (!flowId) return replace(this.detail, h("p", { class: "placeholder" }, t("flows.pick")));
    replace(this.detail, h("p", { class: "placeholder" }, t("common.loading")));
    let flow;
    try {
      flow = await api(`/flows/${flowId}`);
    } catch (error) {
      return replace(this.detail, h("p", { role: "alert" }, errorText(error)));
    }
    this.loadList();
    this.renderFlow(flow);
  }

  renderFlow(flow, message = "") {
    const versions = [["", t("flows.draft")]];
    for (let v = flow.current_version || 0; v >= 1; v--) versions.push([String(v), `v${v}`]);
    const version = select(versions, "", { onchange: (e) => this.drawDiagram(flow.id, e.target.value) });
    this.diagram = h("div", { class: "diagram", role: "img", "aria-label": t("flows.diagramOf", { name: flow.name }) });
    this.source = h("pre", { class: "diagram-source" });
    this.transcript = h("div", { class: "transcript" });
    this.runs = h("div", { class: "runs" });
    replace(
      this.detail,
      h(
        "header",
        { class: "flow-head" },
        h("h2", {}, flow.name),
        h("span", { class: "badge" }, t(`flowStatus.${flow.status}`)),
        flow.current_version ? h("span", { class: "muted" }, t("flows.version", { n: flow.current_version })) : null,
        h("button", { type: "button", class: "primary", onclick: () => this.publish(flow) }, t("flows.publish")),
        h("a", { class: "button", href: `#/flows/${flow.id}/edit` }, t("flows.edit")),
      ),
      flow.description ? h("p", {}, flow.description) : null,
      h("p", { role: "status", class: "muted" }, message),
      h("section", { class: "card" }, h("h3", {}, t("flows.diagram")), field(t("flows.versionPick"), version), this.diagram,
        h("details", {}, h("summary", {}, t("flows.source")), this.source)),
      h("section", { class: "card" }, h("h3", {}, t("flows.simulate")), this.simulateForm(flow, versions), this.transcript),
      h("section", { class: "card" }, h("h3", {}, t("flows.runs")), this.runs),
    );
    this.drawDiagram(flow.id, "");
    this.loadRuns(flow.id);
  }

  async drawDiagram(flowId, version) {
    replace(this.diagram, h("p", { class: "muted" }, t("common.loading")));
    try {
      const [text, mermaid] = await Promise.all([
        api(`/flows/${flowId}/diagram${qs({ version })}`, { text: true }),
        loadMermaid(),
      ]);
      this.source.textContent = text;
      const { svg } = await mermaid.render(`flow-diagram-${++diagrams}`, text);
      this.diagram.innerHTML = svg; // Mermaid's own output, sanitized by securityLevel "strict"
    } catch (error) {
      replace(this.diagram, h("p", { role: "alert" }, errorText(error)));
    }
  }

  async publish(flow) {
    try {
      const version = await api(`/flows/${flow.id}/publish`, { method: "POST" });
      this.renderFlow(await api(`/flows/${flow.id}`), t("flows.published", { n: version.version }));
      this.loadList();
    } catch (error) {
      this.renderFlow(flow, errorText(error));
    }
  }

  simulateForm(flow, versions) {
    const replies = h("textarea", { rows: "4", placeholder: t("flows.repliesHint") });
    const version = select(versions, "");
    return h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          // one reply per line; "-" alone plays a customer who never answers (a timeout)
          const lines = replies.value.split("\n").filter((line) => line.trim() !== "");
          const body = { replies: lines.map((line) => (line.trim() === "-" ? null : line)) };
          if (version.value) body.version = Number(version.value);
          try {
            this.showSimulation(await api(`/flows/${flow.id}/simulate`, { method: "POST", body }));
          } catch (error) {
            replace(this.transcript, h("p", { role: "alert" }, errorText(error)));
          }
        },
      },
      field(t("flows.replies"), replies),
      field(t("flows.versionPick"), version),
      h("button", { type: "submit" }, t("flows.run")),
    );
  }

  showSimulation(result) {
    replace(
      this.transcript,
      h("p", { "data-status": result.status }, h("strong", {}, t("flows.outcome")), " ", result.status,
        result.current_node ? ` · ${result.current_node}` : "", result.error ? ` · ${result.error}` : ""),
      h(
        "ol",
        { class: "transcript-steps" },
        result.transcript.map(({ node, event, ...data }) =>
          h("li", { "data-event": event }, h("code", {}, node), ` ${event} `, h("span", { class: "muted" }, describeStep(data))),
        ),
      ),
    );
  }

  async loadRuns(flowId, message = "") {
    try {
      const page = await api(`/flows/${flowId}/runs${qs({ limit: 20 })}`);
      replace(
        this.runs,
        message ? h("p", { role: "alert" }, message) : null,
        page.data.length ? null : h("p", { class: "muted" }, t("flows.noRuns")),
        h("ul", { class: "run-list" }, page.data.map((run) => this.runRow(flowId, run))),
      );
    } catch (error) {
      replace(this.runs, h("p", { role: "alert" }, errorText(error)));
    }
  }

  runRow(flowId, run) {
    return h(
      "li",
      { "data-status": run.status },
      h("span", { class: "badge" }, run.status),
      ` v${run.flow_version} · ${run.current_node_id || "—"} · ${dateTime(run.started_at)} `,
      h("a", { href: `#/inbox/${run.conversation_id}` }, t("flows.conversation")),
      ACTIVE_RUN.has(run.status)
        ? h("button", { type: "button", onclick: () => this.cancelRun(flowId, run) }, t("flows.cancelRun"))
        : null,
    );
  }

  async cancelRun(flowId, run) {
    try {
      await api(`/flow-runs/${run.id}/cancel`, { method: "POST" });
      this.loadRuns(flowId);
    } catch (error) {
      this.loadRuns(flowId, errorText(error));
    }
  }
}
