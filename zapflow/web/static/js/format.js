// Formatting shared by the views: times, money, ids.
import { lang, t } from "./i18n.js";

export function time(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  const options = sameDay ? { hour: "2-digit", minute: "2-digit" } : { day: "2-digit", month: "short" };
  return new Intl.DateTimeFormat(lang(), options).format(date);
}

export function dateTime(iso) {
  return iso
    ? new Intl.DateTimeFormat(lang(), { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso))
    : "";
}

export function money(value, currency) {
  return new Intl.NumberFormat(lang(), { style: "currency", currency }).format(Number(value));
}

export function totals(valueTotals) {
  const parts = Object.entries(valueTotals || {}).map(([currency, value]) => money(value, currency));
  return parts.length ? parts.join(" + ") : money(0, "BRL");
}

// A URL a provider (so a customer) supplied, fit for a link: http(s) only, never javascript:/data:.
export function webUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// crypto.randomUUID needs a secure context; a plain-http deployment still needs ids.
export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function errorText(error) {
  if (!error) return "";
  if (error.code === "network") return t("error.network");
  return error.message || error.code || t("error.unknown");
}

// A flow transcript step's details: the text sent or received, else its data as JSON.
export function describeStep(data) {
  const text = data.text ?? data.message?.text;
  if (typeof text === "string") return text;
  const json = JSON.stringify(data);
  return json === "{}" ? "" : json;
}
