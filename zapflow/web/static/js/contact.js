// The contact panel beside a thread: the contact's fields, tags, notes and deals.
import { api, qs } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { dateTime, errorText, money } from "./format.js";
import { t } from "./i18n.js";

export class ContactPanel {
  constructor(pane, conversation, ctx) {
    this.ctx = ctx;
    this.contactId = conversation.contact_id;
    this.conversation = conversation;
    this.details = h("section", { class: "card", "aria-labelledby": "contact-details-h" });
    this.tags = h("section", { class: "card", "aria-labelledby": "contact-tags-h" });
    this.notes = h("section", { class: "card", "aria-labelledby": "contact-notes-h" });
    this.deals = h("section", { class: "card", "aria-labelledby": "contact-deals-h" });
    this.extras = ctx.panels.map((Panel) => new Panel(conversation, ctx));
    replace(
      pane,
      h("a", { href: `#/inbox/${conversation.id}`, class: "button close-contact" }, t("contact.close")),
      this.details,
      this.tags,
      this.notes,
      this.deals,
      this.extras.map((panel) => panel.el),
    );
    this.load();
  }

  onEvent(event) {
    if (event.type.startsWith("deal.") && event.data?.contact_id === this.contactId) this.loadDeals();
    for (const panel of this.extras) panel.onEvent?.(event);
  }

  async load() {
    try {
      this.contact = await api(`/contacts/${this.contactId}`);
    } catch (error) {
      replace(this.details, h("p", { role: "alert" }, errorText(error)));
      return;
    }
    this.renderDetails();
    this.renderTags();
    this.loadNotes();
    this.loadDeals();
  }

  renderDetails(message) {
    const c = this.contact;
    const name = h("input", { type: "text", value: c.name, required: true, maxlength: "200" });
    const email = h("input", { type: "email", value: c.email || "" });
    const custom = Object.entries(c.custom_fields || {});
    replace(
      this.details,
      h("h3", { id: "contact-details-h" }, t("contact.details")),
      h(
        "form",
        {
          onsubmit: async (e) => {
            e.preventDefault();
            await this.patch({ name: name.value.trim(), email: email.value.trim() || null });
          },
        },
        field(t("contact.name"), name),
        h("p", { class: "muted" }, `${t("contact.phone")}: ${c.phone_number || c.wa_id || "—"}`),
        field(t("contact.email"), email),
        custom.length
          ? h("dl", { class: "custom-fields" }, custom.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]))
          : null,
        h("button", { type: "submit" }, t("common.save")),
        message ? h("p", { role: "status", class: "muted" }, message) : null,
      ),
    );
  }

  async patch(changes) {
    try {
      this.contact = await api(`/contacts/${this.contactId}`, { method: "PATCH", body: changes });
      this.renderDetails(t("common.saved"));
    } catch (error) {
      this.renderDetails(errorText(error));
    }
  }

  renderTags(message) {
    const input = h("input", { type: "text", list: "tag-options", maxlength: "64" });
    replace(
      this.tags,
      h("h3", { id: "contact-tags-h" }, t("contact.tags")),
      h(
        "ul",
        { class: "chips" },
        this.contact.tags.map((tag) =>
          h(
            "li",
            { class: "chip" },
            tag,
            h(
              "button",
              { type: "button", class: "chip-remove", "aria-label": t("contact.removeTag", { tag }), onclick: () => this.untag(tag) },
              "×",
            ),
          ),
        ),
      ),
      h(
        "form",
        {
          class: "inline",
          onsubmit: (e) => {
            e.preventDefault();
            if (input.value.trim()) this.tag(input.value.trim());
          },
        },
        field(t("contact.addTag"), input, { hideLabel: true }),
        h("button", { type: "submit" }, t("contact.add")),
      ),
      message ? h("p", { role: "alert" }, message) : null,
    );
  }

  async tag(tag) {
    await this.tagRequest(`/contacts/${this.contactId}/tags`, { method: "POST", body: { tag } });
  }

  async untag(tag) {
    await this.tagRequest(`/contacts/${this.contactId}/tags/${encodeURIComponent(tag)}`, { method: "DELETE" });
  }

  async tagRequest(path, options) {
    try {
      this.contact = (await api(path, options)) || (await api(`/contacts/${this.contactId}`));
      this.renderTags();
    } catch (error) {
      this.renderTags(errorText(error));
    }
  }

  async loadNotes(message) {
    let page = { data: [] };
    try {
      page = await api(`/notes${qs({ contact_id: this.contactId, limit: 20 })}`);
    } catch (error) {
      message = errorText(error);
    }
    const body = h("textarea", { rows: "2", maxlength: "10000", required: true });
    replace(
      this.notes,
      h("h3", { id: "contact-notes-h" }, t("contact.notes")),
      h(
        "form",
        {
          onsubmit: async (e) => {
            e.preventDefault();
            try {
              await api("/notes", { method: "POST", body: { body: body.value, contact_id: this.contactId } });
              this.loadNotes();
            } catch (error) {
              this.loadNotes(errorText(error));
            }
          },
        },
        field(t("contact.newNote"), body, { hideLabel: true }),
        h("button", { type: "submit" }, t("contact.addNote")),
      ),
      message ? h("p", { role: "alert" }, message) : null,
      h(
        "ul",
        { class: "notes" },
        page.data.map((note) => h("li", {}, h("p", {}, note.body), h("time", { class: "muted" }, dateTime(note.created_at)))),
      ),
    );
  }

  async loadDeals(message) {
    let deals = [];
    try {
      deals = (await api(`/deals${qs({ contact_id: this.contactId, limit: 50 })}`)).data;
    } catch (error) {
      message = errorText(error);
    }
    await this.ctx.ready;
    const funnels = this.ctx.funnels;
    replace(
      this.deals,
      h("h3", { id: "contact-deals-h" }, t("contact.deals")),
      message ? h("p", { role: "alert" }, message) : null,
      h("ul", { class: "deals" }, deals.map((deal) => this.dealRow(deal))),
      funnels.length ? this.dealForm(funnels) : h("p", { class: "muted" }, t("board.noFunnels")),
    );
  }

  dealRow(deal) {
    const funnel = this.ctx.funnels.find((f) => f.id === deal.funnel_id);
    const stages = funnel ? funnel.stages.map((s) => [s.id, s.name]) : [[deal.stage.id, deal.stage.name]];
    const stage = select(stages, deal.stage_id, {
      onchange: (e) => this.move(deal, e.target.value),
    });
    return h(
      "li",
      { class: "deal", "data-id": deal.id },
      h("strong", {}, deal.title),
      h("span", {}, money(deal.value, deal.currency)),
      deal.status !== "open" ? h("span", { class: "badge" }, t(`deal.${deal.status}`)) : null,
      field(t("deal.stage"), stage, { hideLabel: true }),
    );
  }

  async move(deal, stageId) {
    try {
      await api(`/deals/${deal.id}/move`, { method: "POST", body: { stage_id: stageId } });
      this.loadDeals();
    } catch (error) {
      this.loadDeals(errorText(error));
    }
  }

  dealForm(funnels) {
    const title = h("input", { type: "text", required: true, maxlength: "200" });
    const value = h("input", { type: "number", min: "0", step: "0.01", value: "0" });
    const funnel = select(funnels.map((f) => [f.id, f.name]), funnels[0].id);
    return h(
      "form",
      {
        class: "deal-form",
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            await api("/deals", {
              method: "POST",
              body: { title: title.value.trim(), value: value.value || "0", funnel_id: funnel.value, contact_id: this.contactId },
            });
            this.loadDeals();
          } catch (error) {
            this.loadDeals(errorText(error));
          }
        },
      },
      h("h4", {}, t("deal.new")),
      field(t("deal.title"), title),
      field(t("deal.value"), value),
      field(t("deal.funnel"), funnel),
      h("button", { type: "submit" }, t("deal.create")),
    );
  }
}
