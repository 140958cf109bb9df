// Canned responses managed on the account page: one's own, and the company's for supervisors
// and admins (canned:manage). Each has its /shortcut, its text (with the variables the composer
// fills in), up to 5 attachments (media by URL, a file uploaded to POST /media now, or one of the
// company's files picked from GET /media; sent after the text) and up to 3 reply buttons
// (the text then goes as an interactive button message; an empty id is the title). A change empties the
// composer's cached list (ctx.canned), so the next "/" reads the new one.
import { api, qs } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { errorText } from "./format.js";
import { t } from "./i18n.js";

const KINDS = ["image", "document", "video", "audio"];
const MAX_ATTACHMENTS = 5;
const ACCEPT = "image/jpeg,image/png,application/pdf,video/mp4,audio/mp4,audio/ogg,audio/mpeg"; // the server reads the type itself
const MAX_BUTTONS = 3; // WhatsApp's reply buttons; the server checks titles and ids

export class CannedManager {
  constructor(ctx, onChange = () => {}) {
    this.ctx = ctx;
    this.onChange = onChange; // a response's attachments changed what names the files
    this.editing = null; // the response the form changes; null: a new one
    this.list = h("ul", { class: "canned-list" });
    this.status = h("p", { role: "status" });
    this.shortcut = h("input", { required: true, pattern: "[a-z0-9_\\-]{1,32}", maxlength: "32" });
    this.body = h("textarea", { required: true, rows: "3", maxlength: "4096" });
    this.companyWide = h("input", { type: "checkbox" });
    this.attachments = h("div", { class: "canned-attachments" });
    this.buttons = h("div", { class: "canned-buttons" });
    this.heading = h("h4", {}, t("cannedm.new"));
    this.picker = h("select", { "aria-label": t("cannedm.pick"), onchange: () => this.pick() });
    const form = h(
      "form",
      { class: "canned-form", onsubmit: (e) => (e.preventDefault(), this.save()) },
      this.heading,
      field(t("cannedm.shortcut"), this.shortcut),
      field(t("cannedm.body"), this.body),
      ctx.can("canned:manage") && h("label", { class: "check" }, this.companyWide, " ", t("cannedm.companyWide")),
      this.attachments,
      h("button", { type: "button", onclick: () => this.addAttachment() }, t("cannedm.attach")),
      h("label", { class: "button" }, t("cannedm.upload"),
        h("input", { type: "file", class: "visually-hidden", accept: ACCEPT, onchange: (e) => this.upload(e.target) })),
      ctx.can("media:read") && this.picker,
      this.buttons,
      h("button", { type: "button", onclick: () => this.addButton() }, t("cannedm.addButton")),
      h("button", { type: "submit", class: "primary" }, t("cannedm.save")),
      h("button", { type: "button", onclick: () => this.edit(null) }, t("cannedm.cancel")),
    );
    this.el = h("section", { class: "canned-manager", "aria-labelledby": "canned-h" },
      h("h3", { id: "canned-h" }, t("canned.label")), this.list, form, this.status);
  }

  async load() {
    this.rows = await api("/canned-responses");
    if (this.ctx.can("media:read")) await this.loadFiles();
    const mayChange = (c) => c.user_id === this.ctx.me.user?.id || (c.user_id === null && this.ctx.can("canned:manage"));
    replace(
      this.list,
      this.rows.map((c) =>
        h("li", { "data-shortcut": c.shortcut },
          h("strong", {}, `/${c.shortcut}`), " ", h("span", {}, c.body), " ",
          h("span", { class: "muted" }, c.user_id ? t("cannedm.yours") : t("cannedm.company")),
          c.attachments.length ? h("span", { class: "muted" }, ` · ${t("composer.attachments")}: ${c.attachments.length}`) : null,
          c.buttons.length ? h("span", { class: "muted" }, ` · ${t("cannedm.buttons")}: ${c.buttons.map((b) => b.title).join(" | ")}`) : null,
          mayChange(c) && h("button", { type: "button", onclick: () => this.edit(c) }, t("cannedm.edit")),
          mayChange(c) && h("button", { type: "button", onclick: () => this.remove(c) }, t("cannedm.delete"))),
      ),
    );
  }

  // The company's newest files to pick one from (older ones: upload again, or the account's list).
  async loadFiles() {
    this.files = (await api(`/media${qs({ limit: 100 })}`)).data;
    replace(this.picker, h("option", { value: "" }, t("cannedm.pick")),
      this.files.map((f) => h("option", { value: f.id }, `${t(`type.${f.kind}`)}: ${f.filename || f.id}`)));
  }

  pick() {
    const file = this.files.find((f) => f.id === this.picker.value);
    this.picker.value = "";
    if (file && this.attachments.children.length < MAX_ATTACHMENTS) {
      this.addUploaded({ media_id: file.id, kind: file.kind, filename: file.filename });
    }
  }

  // A file uploaded now: an attachment naming it (its kind as the server read it).
  async upload(input) {
    const [file] = input.files;
    input.value = "";
    if (!file || this.attachments.children.length >= MAX_ATTACHMENTS) return;
    this.status.textContent = "";
    try {
      const stored = await api(`/media${qs({ filename: file.name })}`, { method: "POST", body: file });
      this.addUploaded({ media_id: stored.id, kind: stored.kind, filename: stored.filename });
    } catch (error) {
      this.status.textContent = errorText(error);
    }
  }

  addUploaded(media) {
    const row = h("div", { class: "canned-attachment", "data-media-id": media.media_id },
      h("span", { class: "chip" }, `${t(`type.${media.kind}`)}: ${media.filename || t("cannedm.uploaded")}`),
      h("button", { type: "button", "aria-label": t("composer.detach"), onclick: () => row.remove() }, "×"));
    row.media = () => media;
    this.attachments.append(row);
  }

  addAttachment(media = { url: "", kind: "image" }) {
    if (this.attachments.children.length >= MAX_ATTACHMENTS) return;
    if (media.media_id) return this.addUploaded(media);
    const url = h("input", { type: "url", required: true, value: media.url, placeholder: "https://" });
    const kind = select(KINDS.map((k) => [k, t(`type.${k}`)]), media.kind);
    const row = h("div", { class: "canned-attachment" }, field(t("cannedm.url"), url), field(t("cannedm.kind"), kind),
      h("button", { type: "button", "aria-label": t("composer.detach"), onclick: () => row.remove() }, "×"));
    row.media = () => ({ ...media, url: url.value.trim(), kind: kind.value });
    this.attachments.append(row);
    url.focus();
  }

  addButton(button = { id: "", title: "" }) {
    if (this.buttons.children.length >= MAX_BUTTONS) return;
    const title = h("input", { required: true, maxlength: "20", value: button.title });
    const id = h("input", { maxlength: "256", value: button.id === button.title ? "" : button.id });
    const row = h("div", { class: "canned-button" }, field(t("cannedm.buttonTitle"), title), field(t("cannedm.buttonId"), id),
      h("button", { type: "button", "aria-label": t("cannedm.removeButton"), onclick: () => row.remove() }, "×"));
    row.button = () => ({ id: id.value.trim() || title.value.trim(), title: title.value.trim() });
    this.buttons.append(row);
    title.focus();
  }

  edit(canned) {
    this.editing = canned;
    this.heading.textContent = canned ? `${t("cannedm.edit")} /${canned.shortcut}` : t("cannedm.new");
    this.shortcut.value = canned?.shortcut ?? "";
    this.body.value = canned?.body ?? "";
    this.companyWide.checked = canned ? canned.user_id === null : false;
    this.companyWide.disabled = Boolean(canned); // the scope is chosen when it is made
    replace(this.attachments);
    for (const media of canned?.attachments ?? []) this.addAttachment(media);
    replace(this.buttons);
    for (const button of canned?.buttons ?? []) this.addButton(button);
  }

  async save() {
    const body = {
      shortcut: this.shortcut.value.trim(),
      body: this.body.value,
      attachments: [...this.attachments.children].map((row) => row.media()),
      buttons: [...this.buttons.children].map((row) => row.button()),
    };
    await this.act(() =>
      this.editing
        ? api(`/canned-responses/${this.editing.id}`, { method: "PATCH", body })
        : api("/canned-responses", { method: "POST", body: { ...body, company_wide: this.companyWide.checked } }),
    );
  }

  async remove(canned) {
    await this.act(() => api(`/canned-responses/${canned.id}`, { method: "DELETE" }));
  }

  async act(request) {
    this.status.textContent = "";
    try {
      await request();
    } catch (error) {
      this.status.textContent = errorText(error);
      return;
    }
    this.ctx.canned = null;
    this.onChange();
    this.status.textContent = t("cannedm.saved");
    this.edit(null);
    await this.load();
  }
}
