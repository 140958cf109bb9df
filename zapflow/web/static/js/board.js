// The deals board: one funnel's stages as kanban columns with their deal counts and totals.
// Deals move by drag and drop, or with each card's stage menu (keyboard and touch).
import { api, qs } from "./api.js";
import { announce, debounce, field, h, replace, select } from "./dom.js";
import { errorText, money, totals } from "./format.js";
import { t } from "./i18n.js";

export class BoardView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.funnelId = null;
    this.reloadSoon = debounce(() => this.load(), 250);
    this.picker = h("div", { class: "board-picker" });
    this.message = h("p", { role: "alert", class: "board-message" });
    this.columns = h("div", { class: "board-columns" });
    this.el = h(
      "section",
      { class: "board", "aria-labelledby": "board-h" },
      h("div", { class: "board-head" }, h("h2", { id: "board-h" }, t("board.title")), this.picker),
      this.message,
      this.columns,
    );
    root.append(this.el);
  }

  destroy() {
    this.el.remove();
  }

  async open(funnelId) {
    try {
      this.ctx.funnels = await api("/funnels");
    } catch (error) {
      this.message.textContent = errorText(error);
    }
    const funnels = this.ctx.funnels;
    if (!funnels.length) {
      replace(this.columns, h("p", { class: "placeholder" }, t("board.noFunnels")));
      return;
    }
    this.funnelId = funnelId || funnels[0].id;
    const choose = select(
      funnels.map((f) => [f.id, f.name]),
      this.funnelId,
      { onchange: (e) => (location.hash = `#/board/${e.target.value}`) },
    );
    replace(this.picker, field(t("board.funnel"), choose));
    this.load();
  }

  onEvent(event) {
    if (event.type.startsWith("deal.") && (!event.data?.funnel_id || event.data.funnel_id === this.funnelId)) {
      this.reloadSoon();
    }
  }

  async load() {
    try {
      this.board = await api(`/funnels/${this.funnelId}/board${qs({ per_stage: 50 })}`);
      this.render();
    } catch (error) {
      this.message.textContent = errorText(error);
    }
  }

  render() {
    const stages = this.board.stages.map((s) => [s.id, s.name]);
    replace(
      this.columns,
      this.board.stages.map((stage) => {
        const column = h(
          "section",
          { class: "column", "data-stage": stage.id, "aria-labelledby": `stage-${stage.id}` },
          h(
            "header",
            { style: `border-top-color:${stage.color}` },
            h("h3", { id: `stage-${stage.id}` }, stage.name),
            h("span", { class: "count", "aria-label": t("board.dealsN", { n: stage.deal_count }) }, stage.deal_count),
            h("span", { class: "total" }, totals(stage.value_totals)),
          ),
          h("ul", { class: "cards" }, stage.deals.map((deal) => this.card(deal, stages))),
          stage.has_more ? h("p", { class: "muted" }, t("board.more")) : null,
        );
        column.addEventListener("dragover", (e) => {
          e.preventDefault();
          column.classList.add("drop");
        });
        column.addEventListener("dragleave", () => column.classList.remove("drop"));
        column.addEventListener("drop", (e) => {
          e.preventDefault();
          column.classList.remove("drop");
          const dealId = e.dataTransfer.getData("text/plain");
          if (dealId) this.move(dealId, stage.id);
        });
        return column;
      }),
    );
  }

  card(deal, stages) {
    const menu = select(stages, deal.stage_id, { onchange: (e) => this.move(deal.id, e.target.value) });
    return h(
      "li",
      {
        class: "deal-card",
        draggable: "true",
        "data-id": deal.id,
        ondragstart: (e) => {
          e.dataTransfer.setData("text/plain", deal.id);
          e.dataTransfer.effectAllowed = "move";
        },
      },
      h("strong", {}, deal.title),
      h("span", { class: "muted" }, deal.contact.name),
      h("span", { class: "value" }, money(deal.value, deal.currency)),
      field(t("board.moveTo", { title: deal.title }), menu, { hideLabel: true }),
    );
  }

  async move(dealId, stageId) {
    const deal = this.board.stages.flatMap((s) => s.deals).find((d) => d.id === dealId);
    if (!deal || deal.stage_id === stageId) return;
    this.message.textContent = "";
    try {
      const moved = await api(`/deals/${dealId}/move`, { method: "POST", body: { stage_id: stageId } });
      announce(t("board.moved", { title: moved.title, stage: moved.stage.name }));
    } catch (error) {
      this.message.textContent = errorText(error);
    }
    await this.load();
  }
}
