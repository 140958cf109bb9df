// The company's business hours, edited in Settings (admins: company:manage): its time zone, the
// opening ranges of each weekday ("09:00-12:00, 13:00-18:00"; empty: closed) and its holidays
// (a local date per line). SLA targets count this time (services/business_hours.py); an AI
// agent set to business hours only, and campaigns so limited, follow it. Saved with PATCH
// /company: the server checks zone, ranges and dates; `settings` is replaced as a whole, so
// the company's other settings are sent back as read.
import { api } from "./api.js";
import { field, h, replace } from "./dom.js";
import { errorText } from "./format.js";
import { t } from "./i18n.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const RANGE = /^(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})$/;

// "09:00-12:00, 13:00-18:00" → [["09:00", "12:00"], ["13:00", "18:00"]]; null when malformed
export function parseRanges(text) {
  const parts = text.split(",").map((part) => part.trim()).filter(Boolean);
  const ranges = parts.map((part) => RANGE.exec(part));
  return ranges.every(Boolean) ? ranges.map((m) => [m[1], m[2]]) : null;
}

export class BusinessHoursEditor {
  constructor() {
    this.timezone = h("input", { type: "text", required: true, spellcheck: "false", placeholder: "America/Sao_Paulo" });
    this.days = Object.fromEntries(DAYS.map((day) => [day, h("input", { type: "text", placeholder: t("hours.closed") })]));
    this.holidays = h("textarea", { rows: 3, placeholder: "2026-12-25" });
    this.status = h("p", { role: "status" });
    this.el = h(
      "form",
      { class: "business-hours", onsubmit: (e) => (e.preventDefault(), this.save()) },
      h("h3", {}, t("hours.title")),
      h("p", { class: "muted" }, t("hours.help")),
      field(t("hours.timezone"), this.timezone),
      DAYS.map((day) => field(t(`hours.${day}`), this.days[day])),
      field(t("hours.holidays"), this.holidays),
      h("button", { type: "submit", class: "primary" }, t("hours.save")),
      this.status,
    );
  }

  async load() {
    try {
      this.show(await api("/company"));
    } catch (error) {
      this.status.textContent = errorText(error);
    }
  }

  show(company) {
    this.settings = company.settings || {};
    this.timezone.value = company.timezone;
    for (const day of DAYS) this.days[day].value = (company.business_hours[day] || []).map(([a, b]) => `${a}-${b}`).join(", ");
    this.holidays.value = (this.settings.holidays || []).join("\n");
  }

  async save() {
    const hours = {};
    for (const day of DAYS) {
      const ranges = parseRanges(this.days[day].value);
      if (!ranges) {
        this.status.textContent = t("hours.badRange", { day: t(`hours.${day}`) });
        return;
      }
      if (ranges.length) hours[day] = ranges;
    }
    const holidays = this.holidays.value.split(/[\s,]+/).filter(Boolean);
    const body = { timezone: this.timezone.value.trim(), business_hours: hours, settings: { ...this.settings, holidays } };
    try {
      this.show(await api("/company", { method: "PATCH", body }));
      this.status.textContent = t("hours.saved");
    } catch (error) {
      this.status.textContent = errorText(error);
    }
  }
}
