// The contact panel's follow-ups for one conversation: schedule one (in N minutes/hours/days, or
// at a date and time picked), list them with their state, cancel a pending one.
import { api, qs } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { dateTime, errorText } from "./format.js";
import { t } from "./i18n.js";

const UNITS = { minutes: (n) => `PT${n}M`, hours: (n) => `PT${n}H`, days: (n) => `P${n}D` };

export class FollowUpsPanel {
  constructor(conversation) {
    this.conversationId = conversation.id;
    this.list = h("ul", { class: "followups" });
    this.message = h("p", { role: "alert" });
    this.el = h(
      "section",
      { class: "card", "aria-labelledby": "followups-h" },
      h("h3", { id: "followups-h" }, t("followup.title")),
      this.form(),
      this.message,
      this.list,
    );
    this.load();
  }

  onEvent(event) {
    if (event.type.startsWith("followup.") && event.conversation_id === this.conversationId) this.load();
  }

  form() {
    const text = h("textarea", { rows: "2", maxlength: "4096", required: true });
    const amount = h("input", { type: "number", min: "1", max: "365", value: "2", required: true });
    const unit = select(
      Object.keys(UNITS).map((u) => [u, t(`followup.${u}`)]),
      "days",
    );
    const at = h("input", { type: "datetime-local" });
    const mode = h("div", { class: "when", role: "radiogroup", "aria-label": t("followup.when") });
    const choice = (value, label, checked) =>
      h("label", {}, h("input", { type: "radio", name: `when-${this.conversationId}`, value, checked }), ` ${label}`);
    mode.append(choice("after", t("followup.inTime"), true), choice("at", t("followup.atTime"), false));
    const cancelOnReply = h("input", { type: "checkbox", checked: true });
    const businessHours = h("input", { type: "checkbox" });
    return h(
      "form",
      {
        class: "followup-form",
        onsubmit: async (e) => {
          e.preventDefault();
          const when = mode.querySelector("input:checked").value;
          const body = {
            text: text.value.trim(),
            cancel_on_reply: cancelOnReply.checked,
            only_in_business_hours: businessHours.checked,
          };
          if (when === "after") body.after = UNITS[unit.value](amount.value);
          else if (at.value) body.at = new Date(at.value).toISOString(); // the browser's zone
          else return (this.message.textContent = t("followup.pickTime"));
          try {
            await api(`/conversations/${this.conversationId}/followups`, { method: "POST", body });
            text.value = "";
            this.load();
          } catch (error) {
            this.load(errorText(error));
          }
        },
      },
      field(t("followup.text"), text),
      mode,
      h("div", { class: "inline-fields" }, field(t("followup.amount"), amount), field(t("followup.unit"), unit)),
      field(t("followup.at"), at),
      h("label", { class: "check" }, cancelOnReply, ` ${t("followup.cancelOnReply")}`),
      h("label", { class: "check" }, businessHours, ` ${t("followup.businessHours")}`),
      h("button", { type: "submit" }, t("followup.schedule")),
    );
  }

  async load(message = "") {
    this.message.textContent = message;
    try {
      const page = await api(`/followups${qs({ conversation_id: this.conversationId, limit: 20 })}`);
      replace(this.list, page.data.map((f) => this.row(f)));
    } catch (error) {
      this.message.textContent = errorText(error);
    }
  }

  row(f) {
    return h(
      "li",
      { "data-id": f.id, "data-status": f.status },
      h("span", { class: `badge status-${f.status.toLowerCase()}` }, t(`followup.${f.status}`)),
      " ",
      h("time", { datetime: f.scheduled_for }, dateTime(f.scheduled_for)),
      h("p", {}, f.message_text || f.template_name || ""),
      f.failure_reason ? h("p", { class: "error" }, f.failure_reason) : null,
      f.status === "PENDING"
        ? h("button", { type: "button", onclick: () => this.cancel(f) }, t("followup.cancel"))
        : null,
    );
  }

  async cancel(f) {
    try {
      await api(`/followups/${f.id}`, { method: "DELETE" });
      this.load();
    } catch (error) {
      this.load(errorText(error));
    }
  }
}
