// The contact panel's merge: the contacts that look like this one (or one named by its id),
// a side-by-side preview of the two with their conflicts (this contact's value is kept unless
// the other's is ticked), and the merge itself.
import { api } from "./api.js";
import { field, h, replace } from "./dom.js";
import { errorText } from "./format.js";
import { t } from "./i18n.js";

const SHOWN = ["name", "phone_number", "email", "tags"];

export class MergePanel {
  constructor(conversation) {
    this.contactId = conversation.contact_id;
    this.body = h("div", {});
    this.el = h(
      "section",
      { class: "card merge", "aria-labelledby": "merge-h" },
      h("h3", { id: "merge-h" }, t("merge.title")),
      this.body,
    );
    this.load();
  }

  async load(message = "") {
    const other = h("input", { type: "text", id: `merge-other-${this.contactId}`, pattern: "[0-9a-fA-F-]{36}" });
    let pairs = [];
    try {
      pairs = (await api("/contacts/duplicates")).filter((p) => [p.contact_id, p.other_id].includes(this.contactId));
    } catch (error) {
      message = errorText(error);
    }
    const candidates = pairs.map((p) => (p.contact_id === this.contactId ? p.other_id : p.contact_id));
    replace(
      this.body,
      message ? h("p", { role: "status" }, message) : null,
      candidates.length ? h("p", { class: "muted" }, t("merge.suggested")) : null,
      h("ul", { class: "merge-candidates" }, candidates.map((id) =>
        h("li", {}, h("button", { type: "button", onclick: () => this.preview(id) }, `${t("merge.previewWith")} ${id.slice(0, 8)}`)))),
      h("form", { onsubmit: (e) => (e.preventDefault(), other.value && this.preview(other.value.trim())) },
        field(t("merge.otherId"), other), h("button", { type: "submit" }, t("merge.preview"))),
    );
  }

  async preview(otherId) {
    try {
      const [mine, theirs, report] = await Promise.all([
        api(`/contacts/${this.contactId}`),
        api(`/contacts/${otherId}`),
        api(`/contacts/${this.contactId}/merge`, { method: "POST", body: { contact_id: otherId, preview: true } }),
      ]);
      this.renderPreview(mine, theirs, report);
    } catch (error) {
      this.load(errorText(error));
    }
  }

  renderPreview(mine, theirs, report) {
    const conflicts = new Map(report.conflicts.map((c) => [c.field, c]));
    const takes = new Map();
    const rows = [...SHOWN, ...Object.keys(theirs.custom_fields || {}).map((k) => `custom_fields.${k}`)];
    const value = (contact, name) => {
      const found = name.startsWith("custom_fields.") ? contact.custom_fields?.[name.slice(14)] : contact[name];
      return Array.isArray(found) ? found.join(", ") : found ?? "—";
    };
    const table = h("table", { class: "merge-preview" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, t("merge.this")), h("th", {}, t("merge.other")))),
      h("tbody", {}, rows.map((name) => {
        const take = conflicts.has(name) ? h("input", { type: "checkbox", "aria-label": `${t("merge.take")} ${name}` }) : null;
        if (take) takes.set(name, take);
        return h("tr", { "data-field": name, class: conflicts.has(name) ? "conflict" : "" },
          h("th", {}, name), h("td", {}, String(value(mine, name))),
          h("td", {}, String(value(theirs, name)), take ? h("label", {}, " ", take, ` ${t("merge.take")}`) : null));
      })));
    const moved = Object.entries(report.moved).filter(([, n]) => n).map(([k, n]) => `${k}: ${n}`).join(", ");
    replace(
      this.body,
      table,
      h("p", { class: "muted merge-moves" }, `${t("merge.moves")} ${moved || "—"}`),
      h("button", { type: "button", class: "primary", onclick: () => this.merge(theirs.id, takes) }, t("merge.confirm")),
      h("button", { type: "button", onclick: () => this.load() }, t("common.cancel")),
    );
  }

  async merge(otherId, takes) {
    const take = [...takes].filter(([, box]) => box.checked).map(([name]) => name);
    try {
      await api(`/contacts/${this.contactId}/merge`, { method: "POST", body: { contact_id: otherId, take } });
      this.load(t("merge.done"));
    } catch (error) {
      this.load(errorText(error));
    }
  }
}
