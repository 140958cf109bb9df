// Search over the company's message history (by meaning, by words, or both): each hit links to
// its conversation, with the matching words marked.
import { api, qs } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { dateTime, errorText } from "./format.js";
import { t } from "./i18n.js";

export class SearchView {
  constructor(root) {
    this.query = h("input", { type: "search", required: true, maxlength: "500" });
    this.mode = select(
      [["hybrid", t("search.hybrid")], ["keyword", t("search.keyword")], ["semantic", t("search.semantic")]],
      "hybrid",
    );
    this.results = h("ol", { class: "search-results" });
    this.status = h("p", { role: "status", class: "muted" });
    this.el = h(
      "section",
      { class: "search", "aria-labelledby": "search-h" },
      h("h2", { id: "search-h" }, t("search.title")),
      h(
        "form",
        { role: "search", class: "search-form", onsubmit: (e) => (e.preventDefault(), this.run()) },
        field(t("search.query"), this.query),
        field(t("search.mode"), this.mode),
        h("button", { type: "submit", class: "primary" }, t("search.submit")),
      ),
      this.status,
      this.results,
    );
    root.append(this.el);
  }

  destroy() {
    this.el.remove();
  }

  open() {
    this.query.focus();
  }

  async run() {
    const q = this.query.value.trim();
    if (!q) return;
    this.status.textContent = t("common.loading");
    replace(this.results);
    try {
      const found = await api(`/search${qs({ q, mode: this.mode.value, limit: 30 })}`);
      this.status.textContent = t("search.found", { n: found.data.length });
      replace(this.results, found.data.map((hit) => this.hit(hit)));
    } catch (error) {
      this.status.textContent = errorText(error);
    }
  }

  hit({ message, conversation, contact, snippet }) {
    return h(
      "li",
      {},
      h(
        "a",
        { href: `#/inbox/${conversation.id}`, class: "hit" },
        h("strong", {}, contact.name || contact.phone_number),
        h("time", { class: "muted", datetime: message.provider_timestamp }, ` ${dateTime(message.provider_timestamp)}`),
        h("p", {}, marked(snippet || message.body || "")),
      ),
    );
  }
}

// The API marks the matching words **like this**: <mark> them, as text (never as HTML).
function marked(snippet) {
  return snippet.split("**").map((part, i) => (i % 2 ? h("mark", {}, part) : part));
}
