// Campaigns: the list (status, progress, delivered/read/reply rates), the create wizard
// (campaign-wizard.js) and a campaign's progress page: its stats, failures and exclusions by
// reason, an SVG chart of the recipients done over time (drawn here, no library), and edit
// (the wizard, before the start or while paused) / pause / resume / cancel for roles holding
// campaigns:manage. Everything updates live from the
// stream's `campaign.progress` events.
import { api } from "./api.js";
import { debounce, h, replace } from "./dom.js";
import { dateTime, errorText } from "./format.js";
import { t } from "./i18n.js";
import { CampaignWizard, estimateView, pair } from "./campaign-wizard.js";

const ACTIONS = {
  pause: ["scheduled", "running", "waiting_tier"],
  resume: ["paused"],
  cancel: ["scheduled", "running", "paused", "waiting_tier"],
};
const EDITABLE = ["scheduled", "paused"];
const STATES = ["queued", "sent", "failed", "excluded", "cancelled"];
const SVG = "http://www.w3.org/2000/svg";
const LIST_STATS = 20; // campaigns whose figures the list shows

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  el.append(...children);
  return el;
}

function total(counts) {
  return Object.values(counts || {}).reduce((a, b) => a + b, 0);
}

function done(counts) {
  return total(counts) - (counts?.queued || 0);
}

// Recipients done (sent + failed + excluded + cancelled) over time, against the audience's size:
// one point per progress event since the page opened (and the stats' figure when it opened).
export function progressChart(points, size) {
  const width = 480;
  const height = 160;
  const pad = 28;
  const t0 = points[0]?.at ?? Date.now();
  const span = Math.max(1, (points.at(-1)?.at ?? t0) - t0);
  const top = Math.max(1, size);
  const x = (at) => pad + ((at - t0) / span) * (width - 2 * pad);
  const y = (n) => height - pad - (n / top) * (height - 2 * pad);
  const line = points.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p.done).toFixed(1)}`).join(" ");
  const last = points.at(-1);
  return svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, class: "progress-chart", role: "img", "aria-label": t("campaigns.chartLabel", { done: last?.done ?? 0, total: size }) },
    svg("line", { x1: pad, y1: y(top), x2: width - pad, y2: y(top), class: "goal" }),
    svg("text", { x: pad, y: y(top) - 4, class: "axis" }, String(size)),
    svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis-line" }),
    svg("text", { x: pad, y: height - 8, class: "axis" }, "0"),
    svg("text", { x: width - pad, y: height - 8, class: "axis", "text-anchor": "end" }, `${(span / 1000).toFixed(span < 10_000 ? 1 : 0)} s`),
    points.length > 1 ? svg("path", { d: line, class: "done-line" }) : null,
    last ? svg("circle", { cx: x(last.at), cy: y(last.done), r: 4, class: "done-dot" }) : null,
  );
}

export class CampaignsView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.list = h("ul", { class: "campaign-list" });
    this.detail = h("div", { class: "campaign-detail" });
    this.campaigns = [];
    this.el = h(
      "div",
      { class: "flows campaigns" },
      h("nav", { class: "pane flow-pane", "aria-labelledby": "campaigns-h" },
        h("h2", { id: "campaigns-h" }, t("campaigns.title")),
        ctx.can("campaigns:manage") ? h("a", { class: "button primary", href: "#/campaigns/new" }, t("campaigns.new")) : null,
        this.list),
      h("section", { class: "flow-main" }, this.detail),
    );
    this.reloadList = debounce(() => this.loadList(), 400);
    this.reloadStats = debounce(() => this.loadStats(), 400);
    root.append(this.el);
  }

  destroy() {
    this.wizard?.destroy();
    this.el.remove();
  }

  onEvent(event) {
    if (event.type === "resync") return this.campaignId === "new" ? this.loadList() : this.open(this.campaignId);
    if (event.type !== "campaign.progress") return;
    this.reloadList();
    const data = event.data || {};
    if (data.id !== this.campaignId) return;
    // an event that comes while the page loads is not lost: the reload reads the rows after it
    this.reloadStats();
    if (!this.campaign) return;
    this.campaign = { ...this.campaign, status: data.status, status_reason: data.status_reason };
    this.renderHead();
    if (data.counts) this.renderCounts({ ...this.stats, counts: data.counts });
  }

  async open(id) {
    this.campaignId = id;
    this.wizard?.destroy();
    this.wizard = null;
    this.campaign = null;
    this.loadList();
    if (!id) return replace(this.detail, h("p", { class: "placeholder" }, t("campaigns.pick")));
    if (id === "new") {
      replace(this.detail);
      this.wizard = new CampaignWizard(this.detail, this.ctx);
      return;
    }
    replace(this.detail, h("p", { class: "placeholder" }, t("common.loading")));
    try {
      const [campaign, stats] = await Promise.all([api(`/campaigns/${id}`), api(`/campaigns/${id}/stats`)]);
      this.campaign = campaign;
      this.points = [{ at: Date.now(), done: done(stats.counts) }];
      this.renderCampaign(stats);
    } catch (error) {
      replace(this.detail, h("p", { role: "alert" }, errorText(error)));
    }
  }

  async loadList() {
    try {
      this.campaigns = (await api("/campaigns")).data;
    } catch (error) {
      return replace(this.list, h("li", { role: "alert" }, errorText(error)));
    }
    const figures = new Map(this.campaigns.slice(0, LIST_STATS).map((c) => [c.id, h("span", { class: "list-stats" })]));
    replace(
      this.list,
      this.campaigns.length ? null : h("li", { class: "muted" }, t("campaigns.none")),
      this.campaigns.map((c) =>
        h("li", {},
          h("a", { href: `#/campaigns/${c.id}`, "aria-current": c.id === this.campaignId ? "true" : null },
            h("strong", {}, c.name), " ", h("span", { class: `badge campaign-${c.status}` }, t(`campaignStatus.${c.status}`)),
            h("span", { class: "muted" }, ` ${dateTime(c.scheduled_at || c.created_at)}`), figures.get(c.id))),
      ),
    );
    // the newest campaigns' progress and delivery rate, one stats request each
    for (const [id, el] of figures) {
      api(`/campaigns/${id}/stats`)
        .then((stats) => (el.textContent = t("campaigns.listStats", { done: done(stats.counts), total: total(stats.counts), delivered: stats.delivered_pct })))
        .catch(() => {});
    }
  }

  renderCampaign(stats) {
    this.head = h("header", { class: "flow-head" });
    this.countsEl = h("dl", { class: "campaign-counts" });
    this.ratesEl = h("dl", { class: "campaign-counts" });
    this.reasonsEl = h("div", { class: "campaign-reasons" });
    this.chartEl = h("div", { class: "chart" });
    this.message = h("p", { role: "status", class: "muted" });
    this.estimateEl = h("div");
    replace(
      this.detail,
      this.head,
      this.message,
      h("section", { class: "card" }, h("h3", {}, t("campaigns.progress")), this.countsEl, this.chartEl),
      h("section", { class: "card" }, h("h3", {}, t("campaigns.rates")), this.ratesEl, this.reasonsEl),
      h("section", { class: "card" }, h("h3", {}, t("campaigns.estimate")), this.estimateEl),
    );
    this.renderHead();
    this.renderCounts(stats);
    this.loadEstimate();
  }

  renderHead() {
    const c = this.campaign;
    if (!c || !this.head) return;
    const manage = this.ctx.can("campaigns:manage");
    const buttons = manage
      ? Object.entries(ACTIONS)
          .filter(([, from]) => from.includes(c.status))
          .map(([action]) => h("button", { type: "button", class: action === "cancel" ? "danger" : "", onclick: () => this.control(action) }, t(`campaigns.${action}`)))
      : [];
    // before the start, or while paused (then applied at the resume)
    if (manage && EDITABLE.includes(c.status)) buttons.unshift(h("button", { type: "button", onclick: () => this.edit() }, t("campaigns.edit")));
    replace(
      this.head,
      h("h2", {}, c.name),
      h("span", { class: `badge campaign-${c.status}`, "data-status": c.status }, t(`campaignStatus.${c.status}`)),
      c.status_reason ? h("span", { class: "muted" }, c.status_reason) : null,
      h("span", { class: "actions" }, buttons),
    );
  }

  renderCounts(stats) {
    this.stats = stats;
    const counts = stats.counts || {};
    const size = total(counts);
    if (done(counts) !== this.points.at(-1)?.done) this.points.push({ at: Date.now(), done: done(counts) });
    replace(this.countsEl, STATES.map((s) => pair(t(`recipient.${s}`), String(counts[s] || 0), { "data-count": s })));
    replace(this.chartEl, progressChart(this.points, size));
    const rate = (pct, n) => `${pct}% (${n})`;
    replace(this.ratesEl,
      pair(t("campaigns.delivered"), rate(stats.delivered_pct ?? 0, stats.delivered ?? 0), { "data-rate": "delivered" }),
      pair(t("campaigns.read"), rate(stats.read_pct ?? 0, stats.read ?? 0), { "data-rate": "read" }),
      pair(t("campaigns.replied"), rate(stats.reply_pct ?? 0, stats.replied ?? 0), { "data-rate": "replied" }));
    const reasons = Object.entries(stats.reasons || {}).filter(([, by]) => Object.keys(by).length);
    replace(this.reasonsEl, reasons.map(([kind, by]) =>
      h("div", {}, h("h4", {}, t(`campaigns.reasons.${kind}`)),
        h("ul", {}, Object.entries(by).map(([reason, n]) => h("li", {}, `${reason}: ${n}`))))));
  }

  async loadStats() {
    if (!this.campaign) return;
    const id = this.campaign.id;
    try {
      const [campaign, stats] = await Promise.all([api(`/campaigns/${id}`), api(`/campaigns/${id}/stats`)]);
      if (id !== this.campaign?.id) return;
      this.campaign = campaign;
      this.renderHead();
      this.renderCounts(stats);
    } catch (error) {
      this.message.textContent = errorText(error);
    }
  }

  async loadEstimate() {
    try {
      replace(this.estimateEl, estimateView(await api(`/campaigns/${this.campaign.id}/estimate`)));
    } catch (error) {
      replace(this.estimateEl, h("p", { role: "alert" }, errorText(error)));
    }
  }

  edit() {
    replace(this.detail);
    this.wizard = new CampaignWizard(this.detail, this.ctx, this.campaign, (campaign) => {
      this.loadList();
      this.open(campaign.id);
    });
  }

  async control(action) {
    try {
      this.campaign = await api(`/campaigns/${this.campaign.id}/${action}`, { method: "POST" });
      this.message.textContent = "";
      this.renderHead();
      this.loadList();
    } catch (error) {
      this.message.textContent = errorText(error);
    }
  }
}
