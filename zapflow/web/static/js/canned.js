// Canned responses in the composer: typing "/price" offers the saved replies whose shortcut
// starts so; Tab (or a click) puts the reply in place of "/price", its variables filled in
// from the conversation ({{contact.name}}, {{contact.phone_number}}, {{agent.name}}); its
// attachments and reply buttons go to the composer (onAttach), which sends the text as an
// interactive button message and the attachments after it.
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { t } from "./i18n.js";

const TYPED = /(^|\s)\/([a-z0-9_-]*)$/;
const VARIABLE = /\{\{\s*([a-z_]+)\.([a-z_]+)\s*\}\}/g;

// One request per sign-in: the list is small (≤ 500) and changes rarely.
function cannedOf(ctx) {
  ctx.canned ??= api("/canned-responses").catch(() => []);
  return ctx.canned;
}

export function fill(body, values) {
  return body.replace(VARIABLE, (whole, scope, name) => values[scope]?.[name] ?? whole);
}

export class CannedSuggestions {
  constructor(input, ctx, conversation, onAttach) {
    this.input = input;
    this.onAttach = onAttach;
    this.ctx = ctx;
    this.conversation = conversation;
    this.matches = [];
    this.el = h("ul", { class: "canned-suggestions", role: "listbox", "aria-label": t("canned.label") });
    input.addEventListener("input", () => this.update());
    input.addEventListener("keydown", (e) => {
      if (e.key === "Tab" && this.matches.length) {
        e.preventDefault();
        this.expand(this.matches[0]);
      }
    });
  }

  async update() {
    const typed = TYPED.exec(this.input.value.slice(0, this.input.selectionEnd));
    const all = typed ? await cannedOf(this.ctx) : [];
    const seen = new Set(); // a user's own shortcut shadows the company's (own come first)
    this.matches = all.filter((c) => c.shortcut.startsWith(typed?.[2] ?? "\0") && !seen.has(c.shortcut) && seen.add(c.shortcut));
    replace(
      this.el,
      this.matches.slice(0, 8).map((c) =>
        h(
          "li",
          { role: "option" },
          h("button", { type: "button", onclick: () => this.expand(c) }, h("strong", {}, `/${c.shortcut}`), " ", c.body),
        ),
      ),
    );
  }

  expand(canned) {
    const end = this.input.selectionEnd;
    const before = this.input.value.slice(0, end).replace(TYPED, (whole, space) => space);
    const values = { contact: this.conversation.contact, agent: { name: this.ctx.me.user?.name } };
    const text = fill(canned.body, values);
    this.input.value = before + text + this.input.value.slice(end);
    this.input.selectionEnd = this.input.selectionStart = before.length + text.length;
    this.matches = [];
    replace(this.el);
    if (canned.attachments?.length || canned.buttons?.length) this.onAttach(canned.attachments ?? [], canned.buttons ?? []);
    this.input.focus();
  }
}
