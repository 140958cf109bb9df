// The company's uploaded files on the account page: name, kind, size, uploader and what names
// them (canned responses by shortcut, a count of messages), newest first, a page at a time.
// Delete shows for one's own files and, with media:manage, everyone's; the server refuses a
// file something names (409) and the message says what does.
import { api, qs } from "./api.js";
import { h, replace } from "./dom.js";
import { errorText } from "./format.js";
import { t } from "./i18n.js";

const PAGE = 50;

export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function usedBy(used) {
  const parts = used.canned_responses.map((c) => `/${c.shortcut}`);
  if (used.messages) parts.push(t("media.messages", { count: used.messages }));
  return parts.join(", ") || t("media.unused");
}

export class MediaFiles {
  constructor(ctx) {
    this.ctx = ctx;
    this.rows = h("tbody");
    this.status = h("p", { role: "status" });
    this.more = h("button", { type: "button", hidden: true, onclick: () => this.load(this.cursor) }, t("media.more"));
    this.el = h("section", { class: "media-files", "aria-labelledby": "media-h" },
      h("h3", { id: "media-h" }, t("media.title")),
      h("table", {},
        h("thead", {}, h("tr", {}, ...["name", "kind", "size", "uploader", "usedBy"].map((c) => h("th", {}, t(`media.${c}`))), h("th"))),
        this.rows),
      this.more, this.status);
  }

  // The first page, or the one after ``cursor`` added below the others.
  async load(cursor = null) {
    const page = await api(`/media${qs({ limit: PAGE, cursor })}`);
    const rows = page.data.map((f) => this.row(f));
    if (cursor) this.rows.append(...rows);
    else replace(this.rows, rows);
    this.cursor = page.next_cursor;
    this.more.hidden = !page.has_more;
  }

  row(file) {
    const mayDelete = (file.uploaded_by && file.uploaded_by.id === this.ctx.me.user?.id) || this.ctx.can("media:manage");
    const tr = h("tr", { "data-media-id": file.id },
      h("td", {}, h("a", { href: `/api/v1/media/${file.id}/content` }, file.filename || file.id)),
      h("td", {}, t(`type.${file.kind}`)),
      h("td", {}, fileSize(file.size_bytes)),
      h("td", {}, file.uploaded_by?.name ?? t("media.apiKey")),
      h("td", {}, usedBy(file.used_by)),
      h("td", {}, mayDelete && h("button", { type: "button", onclick: () => this.remove(file, tr) }, t("cannedm.delete"))));
    return tr;
  }

  async remove(file, tr) {
    this.status.textContent = "";
    try {
      await api(`/media/${file.id}`, { method: "DELETE" });
      tr.remove();
      this.status.textContent = t("media.deleted");
    } catch (error) {
      this.status.textContent = errorText(error);
    }
  }
}
