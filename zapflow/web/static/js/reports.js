// The Reports view (#/reports, supervisors and admins): a date range and a team, then charts
// drawn here as SVG (no chart library): conversations opened and closed, first response and
// resolution times (p50, p90), SLA met %, messages in and out, the busiest hours, CSAT; a table
// by team or agent; each report downloadable as CSV (GET /api/v1/reports/...?format=csv).
import { api, qs } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { errorText } from "./format.js";
import { lang, t } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 200;
const PAD = { left: 44, right: 8, top: 10, bottom: 26 };
const WEEKDAYS = { en: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], pt: ["Seg", "Ter", "Qua", "Qui", "Sex", "Sáb", "Dom"] };

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) if (value != null) el.setAttribute(name, value);
  for (const child of children.flat()) if (child != null) el.append(child instanceof Node ? child : String(child));
  return el;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

// seconds as "45 s", "12 min", "3.5 h", "2.1 d"
export function duration(seconds) {
  if (seconds == null) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

const percent = (value) => (value == null ? "–" : `${Math.round(value)} %`);

// "83 % (30/36)": an SLA's targets met of those decided, for one row of the table
function metShare(row, kind) {
  const met = row ? row[`${kind}_met`] : 0;
  const decided = met + (row ? row[`${kind}_missed`] : 0);
  return decided ? `${percent(row[`${kind}_met_pct`])} (${met}/${decided})` : "–";
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

const monthDay = (label) => label.slice(5); // 2026-11-03 → 11-03

// The frame every chart shares: a y axis with three ticks and labels under the x axis.
function frame(title, labels, max, format, content, tick = monthDay) {
  const plotH = H - PAD.top - PAD.bottom;
  const ticks = [0, 0.5, 1].map((f) => {
    const y = PAD.top + plotH * (1 - f);
    return s("g", { class: "tick" }, s("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }),
      s("text", { x: PAD.left - 4, y: y + 4, "text-anchor": "end" }, format(max * f)));
  });
  const every = Math.max(1, Math.ceil(labels.length / 8));
  const slot = (W - PAD.left - PAD.right) / Math.max(1, labels.length);
  const xLabels = labels.map((label, i) =>
    i % every ? null : s("text", { x: PAD.left + slot * (i + 0.5), y: H - 8, "text-anchor": "middle" }, tick(label)));
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title },
    s("title", {}, title), ticks, xLabels, content);
}

// Bars per day; several series side by side, or stacked when `stacked`.
function barChart(title, labels, series, { stacked = false, format = (v) => Math.round(v), tick } = {}) {
  const totals = labels.map((_, i) => series.reduce((sum, one) => sum + (one.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...(stacked ? totals : series.flatMap((one) => one.values))));
  const plotH = H - PAD.top - PAD.bottom;
  const slot = (W - PAD.left - PAD.right) / Math.max(1, labels.length);
  const width = stacked ? slot * 0.7 : (slot * 0.8) / series.length;
  const bars = [];
  labels.forEach((label, i) => {
    let base = 0;
    series.forEach((one, k) => {
      const value = one.values[i] || 0;
      const height = (value / max) * plotH;
      const x = PAD.left + slot * i + (stacked ? slot * 0.15 : slot * 0.1 + width * k);
      const y = PAD.top + plotH - height - (stacked ? base : 0);
      bars.push(s("rect", { x, y, width: Math.max(1, width - 1), height, class: `bar ${one.cls}` },
        s("title", {}, `${label} · ${one.name}: ${format(value)}`)));
      if (stacked) base += height;
    });
  });
  return figure(title, frame(title, labels, max, format, bars, tick), series);
}

// Lines per day (gaps where a day has no value).
function lineChart(title, labels, series, format) {
  const max = niceMax(Math.max(0, ...series.flatMap((one) => one.values.filter((v) => v != null))));
  const plotH = H - PAD.top - PAD.bottom;
  const slot = (W - PAD.left - PAD.right) / Math.max(1, labels.length);
  const lines = series.map((one) => {
    const points = one.values.map((v, i) => (v == null ? null : [PAD.left + slot * (i + 0.5), PAD.top + plotH * (1 - v / max)]));
    const path = points.map((p, i) => (p ? `${i && points[i - 1] ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}` : "")).join("");
    const dots = points.map((p, i) => p && s("circle", { cx: p[0], cy: p[1], r: 2.5, class: `dot ${one.cls}` },
      s("title", {}, `${labels[i]} · ${one.name}: ${format(one.values[i])}`)));
    return s("g", {}, s("path", { d: path, class: `line ${one.cls}` }), dots);
  });
  return figure(title, frame(title, labels, max, format, lines), series);
}

function heatmapChart(title, cells, max) {
  const cw = (W - 40) / 24;
  const ch = 22;
  const names = WEEKDAYS[lang()] || WEEKDAYS.en;
  const rects = cells.flatMap((row, d) =>
    row.map((count, hour) => s("rect", {
      x: 40 + hour * cw, y: d * ch, width: cw - 2, height: ch - 2, class: "heat",
      "fill-opacity": max ? (0.08 + 0.92 * count / max).toFixed(3) : 0.05,
    }, s("title", {}, `${names[d]} ${String(hour).padStart(2, "0")}h: ${count}`))));
  const rows = names.map((name, d) => s("text", { x: 34, y: d * ch + 15, "text-anchor": "end" }, name));
  const hours = [0, 6, 12, 18, 23].map((hour) => s("text", { x: 40 + hour * cw + cw / 2, y: 7 * ch + 12, "text-anchor": "middle" }, `${hour}h`));
  const svg = s("svg", { viewBox: `0 0 ${W} ${7 * ch + 18}`, class: "chart heatmap", role: "img", "aria-label": title },
    s("title", {}, title), rects, rows, hours);
  return figure(title, svg, []);
}

function figure(title, svg, series) {
  const legend = series.length > 1
    ? h("ul", { class: "legend" }, series.map((one) => h("li", {}, h("span", { class: `swatch ${one.cls}` }), one.name)))
    : null;
  return h("figure", { class: "report card" }, h("figcaption", {}, title), svg, legend);
}

export class ReportsView {
  constructor(root, ctx) {
    this.ctx = ctx;
    const today = new Date();
    const from = new Date(today.getTime() - 29 * 86400000);
    this.from = h("input", { type: "date", value: isoDay(from), onchange: () => this.load() });
    this.to = h("input", { type: "date", value: isoDay(today), onchange: () => this.load() });
    this.team = select([["", t("reports.allTeams")]], "", { onchange: () => this.load() });
    this.groupBy = select([["team", t("reports.byTeam")], ["agent", t("reports.byAgent")]], "agent", { onchange: () => this.loadTable() });
    this.status = h("p", { class: "list-status", role: "status" });
    this.charts = h("div", { class: "report-grid" });
    this.table = h("div", { class: "card report-table" });
    const exports = ["conversations", "slas", "messages", "heatmap", "csat"].map((name) =>
      h("button", { type: "button", onclick: () => this.download(name) }, t(`reports.csv.${name}`)));
    this.el = h(
      "section",
      { class: "reports", "aria-labelledby": "reports-h" },
      h("h2", { id: "reports-h" }, t("nav.reports")),
      h("div", { class: "report-filters" }, field(t("reports.from"), this.from), field(t("reports.to"), this.to),
        field(t("reports.team"), this.team), h("div", { class: "exports" }, h("span", { class: "muted" }, "CSV:"), exports)),
      this.status,
      this.charts,
      h("div", { class: "report-by" }, field(t("reports.groupBy"), this.groupBy)),
      this.table,
    );
    root.append(this.el);
    api("/teams").then((teams) => {
      for (const team of teams) this.team.append(h("option", { value: team.id }, team.name));
    }).catch(() => {});
  }

  destroy() {
    this.aborted = true;
    this.el.remove();
  }

  open() {
    this.load();
  }

  params(extra = {}) {
    return qs({ from: this.from.value, to: this.to.value, team_id: this.team.value, ...extra });
  }

  async load() {
    this.status.textContent = t("common.loading");
    try {
      const [conversations, slas, messages, heatmap, csat] = await Promise.all([
        api(`/reports/conversations${this.params()}`),
        api(`/reports/slas${this.params()}`),
        api(`/reports/messages${this.params({ team_id: "" })}`),
        api(`/reports/heatmap${this.params({ team_id: "" })}`),
        api(`/reports/csat${this.params()}`),
      ]);
      if (this.aborted) return;
      this.status.textContent = "";
      this.draw(conversations.rows, slas.rows, messages.rows, heatmap, csat);
      this.loadTable();
    } catch (error) {
      this.status.textContent = errorText(error);
    }
  }

  draw(days, slaDays, messageDays, heatmap, csat) {
    const labels = days.map((row) => row.key);
    const pick = (name) => days.map((row) => row[name]);
    const slaLabels = slaDays.map((row) => row.key);
    const slaPick = (name) => slaDays.map((row) => row[name]);
    const mLabels = messageDays.map((row) => row.day);
    const mPick = (name) => messageDays.map((row) => row[name]);
    const average = csat.average == null ? "–" : csat.average.toFixed(2);
    replace(
      this.charts,
      barChart(t("reports.conversations"), labels, [
        { name: t("reports.opened"), values: pick("opened"), cls: "s1" },
        { name: t("reports.closed"), values: pick("closed"), cls: "s2" },
      ]),
      lineChart(t("reports.times"), labels, [
        { name: t("reports.frtP50"), values: pick("first_response_p50"), cls: "s1" },
        { name: t("reports.frtP90"), values: pick("first_response_p90"), cls: "s3" },
        { name: t("reports.resP50"), values: pick("resolution_p50"), cls: "s2" },
      ], duration),
      lineChart(t("reports.sla"), slaLabels, [
        { name: t("reports.slaFirst"), values: slaPick("first_response_met_pct"), cls: "s1" },
        { name: t("reports.slaResolution"), values: slaPick("resolution_met_pct"), cls: "s2" },
      ], percent),
      barChart(t("reports.handled"), labels, [
        { name: t("reports.human"), values: pick("handled_by_human"), cls: "s1" },
        { name: t("reports.bot"), values: pick("handled_by_bot"), cls: "s4" },
      ], { stacked: true }),
      barChart(t("reports.messages"), mLabels, [
        { name: t("reports.inbound"), values: mPick("inbound"), cls: "s2" },
        { name: t("reports.outHuman"), values: mPick("outbound_human"), cls: "s1" },
        { name: t("reports.outBot"), values: mPick("outbound_bot"), cls: "s4" },
      ]),
      heatmapChart(t("reports.heatmap"), heatmap.cells, heatmap.max),
      barChart(t("reports.csat", { average, rated: csat.rated, requested: csat.requested }), ["1", "2", "3", "4", "5"], [
        { name: t("reports.ratings"), values: csat.distribution, cls: "s3" },
      ], { tick: String }),
    );
  }

  async loadTable() {
    try {
      const groupBy = this.groupBy.value;
      const [report, slas] = await Promise.all([
        api(`/reports/conversations${this.params({ group_by: groupBy })}`),
        api(`/reports/slas${this.params({ group_by: groupBy })}`),
      ]);
      if (this.aborted) return;
      const sla = new Map(slas.rows.map((row) => [row.key, row]));
      const head = ["reports.who", "reports.closed", "reports.frtP50", "reports.frtP90", "reports.resP50", "reports.resP90",
        "reports.slaFirst", "reports.slaResolution", "reports.human", "reports.bot"];
      const rows = report.rows.map((row) => h("tr", {},
        h("th", { scope: "row" }, row.label), h("td", {}, row.closed),
        [row.first_response_p50, row.first_response_p90, row.resolution_p50, row.resolution_p90].map((v) => h("td", {}, duration(v))),
        ["first_response", "resolution"].map((kind) => h("td", {}, metShare(sla.get(row.key), kind))),
        h("td", {}, row.handled_by_human), h("td", {}, row.handled_by_bot)));
      replace(this.table, h("table", {}, h("thead", {}, h("tr", {}, head.map((key) => h("th", { scope: "col" }, t(key))))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: head.length }, t("reports.none"))))));
    } catch (error) {
      replace(this.table, h("p", { class: "error" }, errorText(error)));
    }
  }

  // CSV through fetch (the credential is a header or the session cookie), saved as a file
  async download(name) {
    const extra = ["conversations", "slas"].includes(name) ? { group_by: this.groupBy.value } : {};
    try {
      const csv = await api(`/reports/${name}${this.params({ ...extra, format: "csv" })}`, { text: true });
      const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
      const link = h("a", { href: url, download: `${name}-${this.from.value}-${this.to.value}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      URL.revokeObjectURL(url);
    } catch (error) {
      this.status.textContent = errorText(error);
    }
  }
}

