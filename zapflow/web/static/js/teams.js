// Teams (supervisors and admins): create a team, its routing mode, its members and their
// capacity, its SLA (first-response and resolution targets in business time, what a breach
// does). Agents see the list, read-only. The header's availability toggle lives here too.
import { api } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { errorText } from "./format.js";
import { t } from "./i18n.js";

const MODES = ["manual", "round_robin", "least_busy"];
const ESCALATIONS = ["none", "reassign", "raise_priority"];

// "Available" / "Away": a person's own switch (routing hands conversations to available members)
export function availabilityToggle(ctx) {
  const user = ctx.me.user;
  if (!user) return null;
  const button = h("button", { type: "button", class: "availability" });
  const show = () => {
    button.dataset.availability = user.availability;
    button.setAttribute("aria-pressed", String(user.availability === "available"));
    button.textContent = t(`availability.${user.availability}`);
  };
  button.addEventListener("click", async () => {
    const next = user.availability === "available" ? "away" : "available";
    try {
      Object.assign(user, await api("/me", { method: "PATCH", body: { availability: next } }));
    } catch (error) {
      button.title = errorText(error);
    }
    show();
  });
  show();
  return button;
}

export class TeamsView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.manage = ctx.can("teams:manage");
    this.name = h("input", { type: "text", required: true, maxlength: "80" });
    this.error = h("p", { class: "error", role: "alert" });
    this.list = h("div", { class: "teams" });
    this.el = h(
      "section",
      { class: "teams-view", "aria-labelledby": "teams-h" },
      h("h2", { id: "teams-h" }, t("teams.title")),
      this.manage &&
        h(
          "form",
          { class: "team-create", onsubmit: (e) => (e.preventDefault(), this.create()) },
          field(t("teams.name"), this.name),
          h("button", { type: "submit", class: "primary" }, t("teams.create")),
        ),
      this.error,
      this.list,
    );
    root.append(this.el);
  }

  destroy() {
    this.el.remove();
  }

  async open() {
    try {
      await this.ctx.ready;
      const teams = await api("/teams");
      this.ctx.teams = new Map(teams.map((team) => [team.id, team])); // the thread's menus and notes
      replace(this.list, teams.map((team) => this.card(team)));
    } catch (error) {
      this.error.textContent = errorText(error);
    }
  }

  async run(fn) {
    this.error.textContent = "";
    try {
      await fn();
      await this.open();
    } catch (error) {
      this.error.textContent = errorText(error);
    }
  }

  create() {
    return this.run(async () => {
      await api("/teams", { method: "POST", body: { name: this.name.value } });
      this.name.value = "";
    });
  }

  card(team) {
    const disabled = !this.manage;
    const mode = select(MODES.map((m) => [m, t(`teams.mode.${m}`)]), team.routing_mode, { disabled });
    const first = h("input", { type: "number", min: "1", value: team.first_response_seconds ?? "", disabled });
    const resolution = h("input", { type: "number", min: "1", value: team.resolution_seconds ?? "", disabled });
    const escalation = select(ESCALATIONS.map((e) => [e, t(`teams.escalation.${e}`)]), team.sla_escalation, { disabled });
    const seconds = (input) => (input.value ? Number(input.value) : null);
    // the rating request on close: the company's (null), none, or the team's own question
    const csatMode = team.csat ? (team.csat.enabled ? "on" : "off") : "company";
    const csat = select(["company", "off", "on"].map((m) => [m, t(`teams.csat.${m}`)]), csatMode, { disabled });
    const question = h("input", { type: "text", maxlength: "900", value: team.csat?.question ?? "", disabled });
    const csatBody = () => {
      if (csat.value === "company") return null;
      const own = { ...(team.csat || {}), enabled: csat.value === "on" };
      if (question.value.trim()) own.question = question.value.trim();
      return own;
    };
    const save = () =>
      this.run(() =>
        api(`/teams/${team.id}`, {
          method: "PATCH",
          body: {
            routing_mode: mode.value,
            first_response_seconds: seconds(first),
            resolution_seconds: seconds(resolution),
            sla_escalation: escalation.value,
            csat: csatBody(),
          },
        }),
      );
    return h(
      "article",
      { class: "team card", "data-team": team.id, "aria-label": team.name },
      h("h3", {}, team.name),
      h(
        "form",
        { class: "team-settings", onsubmit: (e) => (e.preventDefault(), save()) },
        field(t("teams.routing"), mode),
        field(t("teams.firstResponse"), first),
        field(t("teams.resolution"), resolution),
        field(t("teams.escalationLabel"), escalation),
        field(t("teams.csatLabel"), csat),
        field(t("teams.csatQuestion"), question),
        this.manage && h("button", { type: "submit" }, t("teams.save")),
      ),
      h("h4", {}, t("teams.members")),
      h("ul", { class: "members" }, team.members.map((m) => this.member(team, m))),
      this.manage && this.addMember(team),
    );
  }

  member(team, member) {
    const user = this.ctx.users.get(member.user_id);
    const name = user?.name ?? member.user_id;
    return h(
      "li",
      { "data-user": member.user_id },
      h("span", {}, name),
      " ",
      h("span", { class: "muted" }, t("teams.capacityOf", { n: member.capacity })),
      this.manage &&
        h(
          "button",
          {
            type: "button",
            "aria-label": t("teams.removeMember", { name }),
            onclick: () => this.run(() => api(`/teams/${team.id}/members/${member.user_id}`, { method: "DELETE" })),
          },
          "×",
        ),
    );
  }

  addMember(team) {
    const inTeam = new Set(team.members.map((m) => m.user_id));
    const options = [...this.ctx.users.values()].filter((u) => !inTeam.has(u.id)).map((u) => [u.id, u.name]);
    if (!options.length) return null;
    const who = select(options, options[0][0]);
    const capacity = h("input", { type: "number", min: "1", max: "1000", value: "5" });
    const add = () =>
      this.run(() =>
        api(`/teams/${team.id}/members/${who.value}`, { method: "PUT", body: { capacity: Number(capacity.value) } }),
      );
    return h(
      "form",
      { class: "member-add", onsubmit: (e) => (e.preventDefault(), add()) },
      field(t("teams.person"), who),
      field(t("teams.capacity"), capacity),
      h("button", { type: "submit" }, t("teams.add")),
    );
  }
}
