// The campaign wizard: the number; the audience (tags and a search, or an uploaded CSV that
// becomes a list) with its live count, exclusions and sample; the message (an approved template
// with each parameter mapped to a contact field, a custom field or a fixed value, with
// fallbacks, previewed as the sample's first contact reads it; or a text on Evolution numbers,
// which have no templates); when (now or at a time) and the pace; then the cost estimate and
// Create. Every change asks the server's preview (POST /campaigns/preview), so what is shown is
// what the campaign would send. Given a campaign, it edits it (PATCH): before the start
// everything but the number; once started (paused) its name, message and pace, applied when it
// resumes, with the audience and schedule shown but fixed.
import { api, qs } from "./api.js";
import { debounce, field, h, replace, select } from "./dom.js";
import { errorText } from "./format.js";
import { t } from "./i18n.js";
import { templateParameters } from "./templates.js";

const SOURCES = ["name", "phone_number", "email", "custom", "value"];

// A figure and its label, one item of a <dl class="campaign-counts">.
export function pair(label, value, attrs = {}) {
  return h("div", {}, h("dt", {}, label), h("dd", attrs, value));
}

// The cost estimate: recipients by Meta's pricing category, inside/outside the 24-hour window.
export function estimateView(estimate) {
  const rows = Object.entries(estimate.by_category).filter(([, n]) => n > 0);
  return h(
    "div",
    { class: "estimate" },
    h("p", {}, t("campaigns.estimateWindow", { inside: estimate.inside_window, outside: estimate.outside_window })),
    h("dl", { class: "campaign-counts" },
      rows.map(([category, n]) => pair(t(`pricing.${category}`), String(n), { "data-category": category })),
      estimate.undeliverable ? pair(t("pricing.undeliverable"), String(estimate.undeliverable), { "data-category": "undeliverable" }) : null),
    h("p", { class: "muted" }, t("campaigns.estimateBillable", { n: estimate.billable }), " · ", estimate.note),
  );
}

// A CSV file sent as a form to the audience upload.
function uploadCsv(file, list) {
  const body = new FormData();
  body.append("file", file);
  return api(`/campaigns/audiences/csv${qs({ list })}`, { method: "POST", body });
}

// One template parameter's source: a contact field, a custom field or a fixed value, and the
// fallback used when the contact has none.
class ParameterRow {
  constructor(parameter, index, onChange) {
    this.parameter = parameter;
    const media = Boolean(parameter.media);
    const initial = media ? "value" : index === 0 ? "name" : "custom";
    this.kind = select(
      SOURCES.filter((s) => !media || s === "value").map((s) => [s, t(`source.${s}`)]),
      initial,
      { onchange: () => (this.sync(), onChange()) },
    );
    this.key = h("input", { type: "text", maxlength: "1024", placeholder: media ? "https://…" : "" });
    if (!media && parameter.part === "body" && !/^\d+$/.test(parameter.key)) this.key.value = parameter.key;
    this.fallback = h("input", { type: "text", maxlength: "1024" });
    for (const input of [this.key, this.fallback]) input.addEventListener("input", onChange);
    const label = parameter.part === "buttons" ? t("wizard.button", { n: Number(parameter.key) + 1 }) : parameter.part === "header" ? t("wizard.header") : `{{${parameter.key}}}`;
    this.keyField = field(t("wizard.customKey"), this.key);
    this.fallbackField = field(t("wizard.fallback"), this.fallback);
    this.el = h("fieldset", { class: "parameter", "data-parameter": `${parameter.part}.${parameter.key}` },
      h("legend", {}, label), field(t("wizard.source"), this.kind), this.keyField, this.fallbackField);
    this.sync();
  }

  sync() {
    const kind = this.kind.value;
    this.keyField.hidden = kind !== "custom" && kind !== "value";
    this.keyField.querySelector("label").textContent = kind === "value" ? t("wizard.value") : t("wizard.customKey");
    this.fallbackField.hidden = kind === "value";
  }

  // Show a stored source (editing a campaign).
  set(source) {
    const custom = source.field?.startsWith("custom_fields.");
    this.kind.value = "value" in source ? "value" : custom ? "custom" : source.field;
    this.key.value = "value" in source ? source.value : custom ? source.field.slice("custom_fields.".length) : "";
    this.fallback.value = source.fallback ?? "";
    this.sync();
  }

  source() {
    const kind = this.kind.value;
    if (kind === "value") return { value: this.key.value };
    const source = { field: kind === "custom" ? `custom_fields.${this.key.value.trim()}` : kind };
    if (this.fallback.value.trim()) source.fallback = this.fallback.value.trim();
    return source;
  }
}

// A stored time as a datetime-local input's value, in the browser's time zone.
function localInput(iso) {
  const at = new Date(iso);
  return new Date(at.getTime() - at.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

export class CampaignWizard {
  // `editing`: the campaign to edit; `onSaved(campaign)` is called after the edit.
  constructor(root, ctx, editing = null, onSaved = null) {
    this.ctx = ctx;
    this.editing = editing;
    this.onSaved = onSaved;
    this.templates = [];
    this.rows = [];
    this.sequence = 0;
    this.refresh = debounce(() => this.preview(), 300);
    const changed = () => this.refresh();
    this.name = h("input", { type: "text", required: true, maxlength: "200" });
    this.instance = select([], "", { onchange: () => this.numberChanged() });
    this.tags = h("input", { type: "text", placeholder: "vip, natal", oninput: changed });
    this.q = h("input", { type: "text", maxlength: "200", oninput: changed });
    this.file = h("input", { type: "file", accept: ".csv,text/csv" });
    this.listName = h("input", { type: "text", maxlength: "50", placeholder: t("wizard.listHint") });
    this.csv = h("details", { class: "csv-upload" }, h("summary", {}, t("wizard.csv")),
      h("p", { class: "muted" }, t("wizard.csvHelp")),
      field(t("wizard.csvFile"), this.file), field(t("wizard.listName"), this.listName),
      h("button", { type: "button", onclick: () => this.upload() }, t("wizard.upload")));
    this.uploaded = h("div", { class: "upload-report" });
    this.counts = h("p", { class: "audience-count", role: "status" });
    this.sample = h("ul", { class: "sample" });
    this.messageBox = h("div");
    this.bubble = h("div", { class: "bubble preview-bubble", "aria-live": "polite" });
    this.when = select([["now", t("wizard.now")], ["at", t("wizard.at")]], "now", { onchange: () => (this.at.hidden = this.when.value !== "at") });
    this.at = h("input", { type: "datetime-local", hidden: true, "aria-label": t("wizard.at") });
    this.throughput = h("input", { type: "number", min: "1", max: "1000", value: "80" });
    this.estimate = h("div");
    this.error = h("p", { class: "error", role: "alert" });
    this.el = h(
      "form",
      { class: "wizard", onsubmit: (e) => (e.preventDefault(), this.editing ? this.save() : this.create()) },
      h("h2", {}, t(editing ? "wizard.editTitle" : "wizard.title")),
      field(t("wizard.name"), this.name),
      h("section", { class: "card" }, h("h3", {}, t("wizard.step1")), field(t("wizard.number"), this.instance)),
      h("section", { class: "card" }, h("h3", {}, t("wizard.step2")),
        h("div", { class: "inline-fields" }, field(t("wizard.tags"), this.tags), field(t("wizard.search"), this.q)),
        this.csv, this.uploaded,
        this.counts, this.sample),
      h("section", { class: "card" }, h("h3", {}, t("wizard.step3")), this.messageBox,
        h("h4", {}, t("wizard.preview")), this.bubble),
      h("section", { class: "card" }, h("h3", {}, t("wizard.step4")),
        h("div", { class: "inline-fields" }, field(t("wizard.when"), this.when), this.at, field(t("wizard.throughput"), this.throughput))),
      h("section", { class: "card" }, h("h3", {}, t("wizard.step5")), this.estimate),
      this.error,
      h("button", { type: "submit", class: "primary" }, t(editing ? "wizard.save" : "wizard.create")),
    );
    root.append(this.el);
    ctx.ready.then(() => this.numbers());
  }

  destroy() {
    this.controller?.abort();
    this.el.remove();
  }

  async numbers() {
    replace(this.instance, this.ctx.instances.map((i) => h("option", { value: i.id }, `${i.name} (${i.provider === "cloud" ? "Cloud API" : "Evolution"})`)));
    if (!this.ctx.instances.length) this.error.textContent = t("wizard.noNumbers");
    if (this.editing) {
      this.instance.value = this.editing.instance_id;
      this.instance.disabled = true; // a campaign keeps its number
    }
    await this.numberChanged();
    if (this.editing) this.fill(this.editing);
  }

  // The form as the campaign being edited stands.
  fill(campaign) {
    this.name.value = campaign.name;
    this.tags.value = (campaign.audience.tags || []).join(", ");
    this.q.value = campaign.audience.q || "";
    this.throughput.value = String(campaign.throughput);
    if (campaign.scheduled_at) {
      this.when.value = "at";
      this.at.hidden = false;
      this.at.value = localInput(campaign.scheduled_at);
    }
    const started = Boolean(campaign.started_at);
    for (const input of [this.tags, this.q, this.when, this.at]) input.disabled = started;
    this.csv.hidden = started;
    const { text, template: spec, parameters = {} } = campaign.message;
    if (this.text && text !== undefined) this.text.value = text;
    const chosen = spec && this.templates.find((tpl) => tpl.name === spec.name && tpl.language === spec.language);
    if (chosen) {
      this.template.value = chosen.id;
      this.templateChanged();
      const named = chosen.parameter_format === "NAMED";
      for (const row of this.rows) {
        const { part, key } = row.parameter;
        const body = parameters.body || {};
        const source = part === "header" ? parameters.header
          : part === "buttons" ? parameters.buttons?.[key]
          : named ? body[key] : body[Number(key) - 1];
        if (source) row.set(source);
      }
    }
    this.refresh();
  }

  get number() {
    return this.ctx.instances.find((i) => i.id === this.instance.value);
  }

  async numberChanged() {
    this.templates = [];
    if (this.number?.provider === "cloud") {
      try {
        this.templates = (await api(`/templates${qs({ instance_id: this.number.id })}`)).data.filter((tpl) => tpl.status !== "DELETED");
      } catch (error) {
        this.error.textContent = errorText(error);
      }
    }
    this.renderMessage();
  }

  renderMessage() {
    this.rows = [];
    if (!this.number) return replace(this.messageBox);
    if (this.number.provider !== "cloud") {
      this.text = h("textarea", { rows: "4", maxlength: "4096", placeholder: t("wizard.textHint"), oninput: () => this.refresh() });
      this.template = null;
      replace(this.messageBox, h("p", { class: "note" }, t("wizard.evolution")), field(t("wizard.text"), this.text));
      return this.refresh();
    }
    this.text = null;
    this.parameters = h("div", { class: "parameters" });
    const options = this.templates.map((tpl) => [tpl.id, `${tpl.name} (${tpl.language}) · ${tpl.category}${tpl.status === "APPROVED" ? "" : ` · ${tpl.status}`}`]);
    this.template = select([["", t("wizard.pickTemplate")], ...options], "", { onchange: () => this.templateChanged() });
    replace(this.messageBox,
      this.templates.length ? null : h("p", { class: "note" }, t("wizard.noTemplates")),
      field(t("wizard.template"), this.template), this.parameters);
    this.refresh();
  }

  templateChanged() {
    const chosen = this.templates.find((tpl) => tpl.id === this.template.value);
    this.rows = chosen ? templateParameters(chosen).map((p, i) => new ParameterRow(p, i, () => this.refresh())) : [];
    replace(this.parameters, this.rows.map((row) => row.el));
    this.refresh();
  }

  audience() {
    const tags = this.tags.value.split(",").map((tag) => tag.trim()).filter(Boolean);
    const q = this.q.value.trim();
    return q ? { tags, q } : { tags };
  }

  // The message as the API takes it, or null while it is incomplete.
  message() {
    if (this.text) return this.text.value.trim() ? { text: this.text.value } : null;
    const chosen = this.templates.find((tpl) => tpl.id === this.template?.value);
    if (!chosen) return null;
    const parameters = {};
    const named = chosen.parameter_format === "NAMED";
    for (const row of this.rows) {
      const { part, key } = row.parameter;
      if (part === "header") parameters.header = row.source();
      else if (part === "buttons") (parameters.buttons ||= {})[key] = row.source();
      else if (named) (parameters.body ||= {})[key] = row.source();
      else (parameters.body ||= [])[Number(key) - 1] = row.source();
    }
    return { template: { name: chosen.name, language: chosen.language }, parameters };
  }

  async preview() {
    if (!this.number) return;
    const sequence = ++this.sequence;
    this.controller?.abort();
    this.controller = new AbortController();
    const message = this.message();
    const body = { instance_id: this.number.id, audience: this.audience(), sample: 3 };
    if (message) body.message = message;
    try {
      const found = await api("/campaigns/preview", { method: "POST", body, signal: this.controller.signal });
      if (sequence !== this.sequence) return;
      this.error.textContent = "";
      this.showPreview(found, Boolean(message));
    } catch (error) {
      if (error.name === "AbortError" || sequence !== this.sequence) return;
      this.error.textContent = errorText(error);
      replace(this.bubble, h("p", { role: "alert" }, errorText(error)));
    }
  }

  showPreview(found, withMessage) {
    const { opted_out: opted = 0, no_phone: noPhone = 0 } = found.excluded;
    replace(this.counts, h("strong", { "data-recipients": found.recipients }, t("wizard.recipients", { n: found.recipients })),
      " ", h("span", { class: "muted" }, t("wizard.excluded", { contacts: found.contacts, opted, noPhone })));
    replace(this.sample, found.sample.map((c) => h("li", {}, h("strong", {}, c.name || c.phone_number), ` ${c.phone_number || ""}`)));
    const first = found.sample[0];
    if (!withMessage) replace(this.bubble, h("p", { class: "muted" }, t("wizard.previewEmpty")));
    else if (!first) replace(this.bubble, h("p", { class: "muted" }, t("wizard.noSample")));
    else if (first.problem) replace(this.bubble, h("p", { role: "alert" }, t("wizard.problem", { name: first.name }), " ", first.problem));
    else replace(this.bubble, h("p", { class: "muted" }, t("wizard.as", { name: first.name || first.phone_number })), h("p", { class: "rendered" }, first.message));
    replace(this.estimate, found.estimate ? estimateView(found.estimate) : h("p", { class: "muted" }, t("wizard.previewEmpty")));
  }

  async upload() {
    const file = this.file.files[0];
    if (!file) return replace(this.uploaded, h("p", { role: "alert" }, t("wizard.pickFile")));
    replace(this.uploaded, h("p", { class: "muted" }, t("common.loading")));
    try {
      const result = await uploadCsv(file, this.listName.value.trim());
      const { report } = result;
      this.tags.value = result.tag;
      this.q.value = "";
      replace(this.uploaded,
        h("p", { role: "status" }, t("wizard.uploaded", { created: report.created, updated: report.updated, tag: result.tag })),
        report.errors.length ? h("div", { role: "alert", class: "row-errors" }, h("p", {}, t("wizard.rowErrors", { n: report.errors.length + report.errors_omitted })),
          h("ul", {}, report.errors.map((e) => h("li", { "data-row": e.row }, t("wizard.rowError", { row: e.row, field: e.field || "—" }), " ", e.message)))) : null);
      this.refresh();
    } catch (error) {
      replace(this.uploaded, h("p", { role: "alert" }, errorText(error)));
    }
  }

  async create() {
    const message = this.message();
    if (!message) return (this.error.textContent = t("wizard.needMessage"));
    const body = {
      name: this.name.value.trim(),
      instance_id: this.instance.value,
      audience: this.audience(),
      message,
      throughput: Number(this.throughput.value) || null,
    };
    if (this.when.value === "at") {
      if (!this.at.value) return (this.error.textContent = t("wizard.needTime"));
      body.scheduled_at = new Date(this.at.value).toISOString();
    }
    try {
      const campaign = await api("/campaigns", { method: "POST", body });
      location.hash = `#/campaigns/${campaign.id}`;
    } catch (error) {
      this.error.textContent = errorText(error);
    }
  }

  // PATCH what may change: once started, not the audience nor the schedule.
  async save() {
    const message = this.message();
    if (!message) return (this.error.textContent = t("wizard.needMessage"));
    const body = { name: this.name.value.trim(), message, throughput: Number(this.throughput.value) || null };
    if (!this.editing.started_at) {
      body.audience = this.audience();
      if (this.when.value === "at" && !this.at.value) return (this.error.textContent = t("wizard.needTime"));
      body.scheduled_at = this.when.value === "at" ? new Date(this.at.value).toISOString() : null;
    }
    try {
      this.onSaved?.(await api(`/campaigns/${this.editing.id}`, { method: "PATCH", body }));
    } catch (error) {
      this.error.textContent = errorText(error);
    }
  }
}
