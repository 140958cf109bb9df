// Templates: the company's message templates as last synced from Meta (filters by number,
// status, category, language) and a Sync button per Cloud API number (templates:manage).
import { api, qs } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { dateTime, errorText } from "./format.js";
import { t } from "./i18n.js";

const STATUSES = ["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL", "DELETED"];
const CATEGORIES = ["MARKETING", "UTILITY", "AUTHENTICATION"];

// The parameters a template asks for, read from its components as the server reads them
// (services/templates.parameters_of): the header's, the body's in order, URL buttons' suffixes.
export function templateParameters(template) {
  const found = [];
  const names = (text) => [...new Set([...(text || "").matchAll(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g)].map((m) => m[1]))];
  for (const component of template.components || []) {
    const kind = String(component.type || "").toUpperCase();
    if (kind === "HEADER") {
      const format = String(component.format || "TEXT").toUpperCase();
      if (format !== "TEXT") found.push({ part: "header", key: "header", media: format.toLowerCase() });
      else if (names(component.text).length) found.push({ part: "header", key: "header" });
    } else if (kind === "BODY") {
      for (const name of names(component.text)) found.push({ part: "body", key: name });
    } else if (kind === "BUTTONS") {
      (component.buttons || []).forEach((button, index) => {
        if (/\{\{/.test(button?.url || "")) found.push({ part: "buttons", key: String(index) });
      });
    }
  }
  return found;
}

export class TemplatesView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.filters = {
      instance_id: select([["", t("templates.anyNumber")]], ""),
      status: select([["", t("templates.anyStatus")], ...STATUSES.map((s) => [s, s])], ""),
      category: select([["", t("templates.anyCategory")], ...CATEGORIES.map((c) => [c, c])], ""),
      language: h("input", { type: "text", maxlength: "16", placeholder: "pt_BR", size: "8" }),
    };
    for (const control of Object.values(this.filters)) control.addEventListener("change", () => this.load());
    this.message = h("p", { role: "status", class: "muted" });
    this.rows = h("tbody");
    this.syncButton = ctx.can("templates:manage")
      ? h("button", { type: "button", class: "primary", onclick: () => this.sync() }, t("templates.sync"))
      : null;
    this.el = h(
      "section",
      { class: "templates", "aria-labelledby": "templates-h" },
      h("header", { class: "flow-head" }, h("h2", { id: "templates-h" }, t("templates.title")), this.syncButton),
      h("form", { class: "template-filters", onsubmit: (e) => (e.preventDefault(), this.load()) },
        field(t("templates.number"), this.filters.instance_id), field(t("templates.status"), this.filters.status),
        field(t("templates.category"), this.filters.category), field(t("templates.language"), this.filters.language)),
      this.message,
      h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, ["name", "language", "category", "status", "quality", "synced"].map((c) => h("th", { scope: "col" }, t(`templates.col.${c}`))))),
        this.rows),
    );
    root.append(this.el);
    ctx.ready.then(() => this.numbers());
  }

  destroy() {
    this.el.remove();
  }

  open() {
    this.load();
  }

  numbers() {
    const cloud = this.ctx.instances.filter((i) => i.provider === "cloud");
    replace(this.filters.instance_id, h("option", { value: "" }, t("templates.anyNumber")),
      this.ctx.instances.map((i) => h("option", { value: i.id }, `${i.name} (${i.provider})`)));
    if (!cloud.length) this.message.textContent = t("templates.evolutionOnly");
  }

  async load() {
    const params = Object.fromEntries(Object.entries(this.filters).map(([name, control]) => [name, control.value.trim()]));
    try {
      const { data } = await api(`/templates${qs(params)}`);
      replace(
        this.rows,
        data.length ? null : h("tr", {}, h("td", { colspan: "6", class: "muted" }, t("templates.none"))),
        data.map((tpl) =>
          h("tr", { "data-status": tpl.status },
            h("td", {}, h("strong", {}, tpl.name)), h("td", {}, tpl.language), h("td", {}, tpl.category),
            h("td", {}, h("span", { class: `badge tpl-${tpl.status.toLowerCase()}` }, tpl.status), tpl.reason ? h("span", { class: "muted" }, ` ${tpl.reason}`) : null),
            h("td", {}, tpl.quality || "—"), h("td", { class: "muted" }, dateTime(tpl.synced_at)))),
      );
    } catch (error) {
      this.message.textContent = errorText(error);
    }
  }

  // Syncs the chosen number, or every Cloud API number when none is chosen.
  async sync() {
    const chosen = this.filters.instance_id.value;
    const numbers = this.ctx.instances.filter((i) => i.provider === "cloud" && (!chosen || i.id === chosen));
    if (!numbers.length) return (this.message.textContent = t("templates.evolutionOnly"));
    this.syncButton.disabled = true;
    try {
      let synced = 0;
      for (const number of numbers) synced += (await api("/templates/sync", { method: "POST", body: { instance_id: number.id } })).synced;
      this.message.textContent = t("templates.synced", { n: synced });
      await this.load();
    } catch (error) {
      this.message.textContent = errorText(error);
    } finally {
      this.syncButton.disabled = false;
    }
  }
}
