// The app shell: sign-in (a person's e-mail and password, an invite link, or an API key), the header (navigation, live status, language), the
// hash routes (#/inbox[/id[/contact]], #/board[/funnel], #/flows[/id], #/campaigns[/id|new],
// #/templates, #/teams, #/reports) and the one live stream
// whose events every view receives.
import { AccountView, SettingsView } from "./people.js";
import { all, api, ApiError, auth, signInRequest } from "./api.js";
import { BoardView } from "./board.js";
import { CampaignsView } from "./campaigns.js";
import { field, h, replace, select } from "./dom.js";
import { FlowsView } from "./flows.js";
import { FollowUpsPanel } from "./followups.js";
import { errorText } from "./format.js";
import { LANGUAGES, lang, markDocument, setLang, t } from "./i18n.js";
import { InboxView } from "./inbox.js";
import { LiveStream } from "./live.js";
import { MergePanel } from "./merge.js";
import { ReportsView } from "./reports.js";
import { SearchView } from "./search.js";
import { TemplatesView } from "./templates.js";
import { availabilityToggle, TeamsView } from "./teams.js";

const root = document.getElementById("root");
const VIEWS = {
  inbox: InboxView,
  board: BoardView,
  flows: FlowsView,
  campaigns: CampaignsView,
  templates: TemplatesView,
  search: SearchView,
  teams: TeamsView,
  reports: ReportsView,
  settings: SettingsView,
  account: AccountView,
};
const NAV = ["inbox", "board", "flows", "campaigns", "templates", "search", "teams", "reports", "settings"]; // the account: the header's name
// what a view needs the signed-in role to hold (the others: every role)
const NEEDS = {
  settings: "users:manage",
  campaigns: "campaigns:read",
  templates: "templates:read",
  teams: "teams:read",
  reports: "reports:read",
};
let live = null;
let view = null;
let viewName = null;
let ctx = null;
let statusPill = null;
let liveState = "connecting";
let companyName = null;

// The sign-in page: e-mail and password, or (for integrations) an API key kept in this tab.
function signIn(message) {
  stop();
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const fail = (err) =>
    (error.textContent = err instanceof ApiError && err.status === 401 ? t("signin.wrong") : errorText(err));
  const email = h("input", { type: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true });
  const people = h(
    "form",
    {
      class: "signin-form",
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        try {
          const me = await signInRequest("/auth/sign-in", { email: email.value, password: password.value });
          auth.session(me.csrf_token);
          start(me);
        } catch (err) {
          fail(err);
        }
      },
    },
    field(t("signin.email"), email),
    field(t("signin.password"), password),
    h("button", { type: "submit", class: "primary" }, t("signin.submit")),
  );
  const keyForm = apiKeyForm(error);
  const toggle = h(
    "button",
    { type: "button", class: "link", onclick: () => ((people.hidden = !people.hidden), (keyForm.hidden = !people.hidden)) },
    t("signin.useKey"),
  );
  const provider = h("div", { class: "signin-provider" });
  const card = h("div", { class: "signin card" }, h("h1", {}, "zapflow"), provider, people, keyForm, toggle, error, languagePicker());
  replace(root, h("main", { class: "signin-page" }, card));
  email.focus();
  providerButton(provider, people);
}

// "Sign in with <provider>" when the operator configured OpenID Connect (GET /auth/options):
// a plain navigation to the provider, which sends the browser back signed in.
async function providerButton(slot, people) {
  const options = await fetch("/auth/options").then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (!options?.oidc || !slot.isConnected) return;
  const go = () => (location.href = options.oidc.start);
  slot.append(h("button", { type: "button", class: "primary sso", onclick: go }, t("signin.with", { name: options.oidc.name })));
  people.before(h("p", { class: "muted or" }, t("signin.or")));
}

// The provider's sign-in came back refused (/app/?sso_error=<code>): say why, once.
function ssoError() {
  const params = new URLSearchParams(location.search);
  const code = params.get("sso_error");
  if (!code) return "";
  params.delete("sso_error");
  history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : "") + location.hash);
  return t(`sso.${code}`) === `sso.${code}` ? t("sso.invalid") : t(`sso.${code}`);
}

function apiKeyForm(error) {
  const key = h("input", { type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  return h(
    "form",
    {
      class: "signin-form",
      hidden: true,
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        try {
          const me = await api("/me", { key: key.value.trim() });
          auth.set(key.value.trim());
          start(me);
        } catch (err) {
          error.textContent = err instanceof ApiError && err.status === 401 ? t("signin.invalid") : errorText(err);
        }
      },
    },
    h("p", {}, t("signin.intro")),
    field(t("signin.key"), key),
    h("button", { type: "submit", class: "primary" }, t("signin.submit")),
  );
}

// An invite or reset link (#/accept/<token>): choose a password, then signed in.
function acceptLink(token) {
  stop();
  const password = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 10 });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      class: "signin card",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const me = await signInRequest("/auth/accept", { token, password: password.value });
          auth.session(me.csrf_token);
          history.replaceState(null, "", "#/inbox");
          start(me);
        } catch (err) {
          error.textContent = errorText(err);
        }
      },
    },
    h("h1", {}, "zapflow"),
    h("p", {}, t("accept.intro")),
    field(t("accept.password"), password),
    h("button", { type: "submit", class: "primary" }, t("accept.submit")),
    error,
  );
  replace(root, h("main", { class: "signin-page" }, form));
  password.focus();
}

async function signOut() {
  if (!auth.key) await api("/me/sign-out", { method: "POST" }).catch(() => {});
  auth.clear();
}

function languagePicker() {
  const picker = select(
    LANGUAGES.map((code) => [code, code.toUpperCase()]),
    lang(),
    { onchange: (e) => (setLang(e.target.value), auth.signedIn ? start(ctx?.me) : signIn()) },
  );
  return field(t("lang.label"), picker, { hideLabel: true });
}

function stop() {
  live?.stop();
  live = null;
  view?.destroy();
  view = null;
  viewName = null;
}

// Signed in: `me` says who and what they may do (the views show only what the role allows;
// the server refuses the rest anyway).
function start(me) {
  stop();
  // the view's first request goes out first; what the views share arrives alongside it
  let shared;
  ctx = { me, users: new Map(), teams: new Map(), instances: [], funnels: [], panels: [FollowUpsPanel, MergePanel] };
  ctx.can = (permission) => me.permissions.includes(permission);
  ctx.ready = new Promise((resolve) => (shared = resolve));
  shell();
  route();
  live = new LiveStream({ headers: auth.headers(), onEvent: dispatch, onState: setLiveState });
  live.start();
  shared(
    Promise.all([
      api("/company").then((company) => (companyName.textContent = company.name)),
      all("/users").then((users) => (ctx.users = new Map(users.map((u) => [u.id, u])))).catch(() => {}),
      api("/instances").then((instances) => (ctx.instances = instances)),
      api("/funnels").then((funnels) => (ctx.funnels = funnels)),
      ctx.can("teams:read") &&
        api("/teams").then((teams) => (ctx.teams = new Map(teams.map((team) => [team.id, team])))).catch(() => {}),
    ]),
  );
  ctx.ready.catch((error) => auth.signedIn && signIn(errorText(error)));
}

function shell() {
  statusPill = h("span", { class: "live-status", role: "status", "aria-live": "polite" });
  setLiveState(liveState);
  const nav = h(
    "nav",
    { "aria-label": t("nav.label") },
    NAV.filter(allowed)
      .map((name) => h("a", { href: `#/${name}`, "data-view": name }, t(`nav.${name}`))),
  );
  const who = ctx.me.user ? `${ctx.me.user.name} · ${t(`role.${ctx.me.role}`)}` : t(`role.${ctx.me.role}`);
  replace(
    root,
    h("a", { href: "#main", class: "skip" }, t("nav.skip")),
    h(
      "header",
      { class: "top" },
      h("span", { class: "brand" }, "zapflow"),
      (companyName = h("span", { class: "company muted" })),
      nav,
      statusPill,
      availabilityToggle(ctx),
      languagePicker(),
      h("a", { href: "#/account", class: "who", "data-view": "account" }, who),
      h("button", { type: "button", onclick: signOut }, t("signin.out")),
    ),
    h("main", { id: "main", tabindex: "-1" }),
  );
}

function setLiveState(state, info = {}) {
  if (state === "unauthorized") return auth.clear();
  liveState = state;
  if (statusPill) {
    statusPill.dataset.state = state;
    statusPill.textContent = t(`live.${state}`);
  }
  // reconnected without a position to resume from: the views reload what they show
  if (state === "live" && info.reconnected && !info.resumed) dispatch({ type: "resync" });
}

function dispatch(event) {
  view?.onEvent?.(event);
}

function route() {
  if (!ctx) return;
  const [name = "inbox", id = null, extra = null] = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const wanted = VIEWS[name] && allowed(name) ? name : "inbox";
  const main = document.getElementById("main");
  if (wanted !== viewName) {
    view?.destroy();
    replace(main);
    view = new VIEWS[wanted](main, ctx);
    viewName = wanted;
  }
  for (const link of root.querySelectorAll("nav a")) {
    if (link.dataset.view === wanted) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  view.open(id, extra);
}

function allowed(view) {
  return !NEEDS[view] || ctx.can(NEEDS[view]);
}

function accepting() {
  const [name, token] = location.hash.replace(/^#\/?/, "").split("/");
  return name === "accept" && token ? token : null;
}

// A reload: the tab's API key, else the session cookie (GET /me says whether it is alive).
async function resume() {
  const token = accepting();
  if (token) return acceptLink(token);
  try {
    const me = await api("/me");
    if (me.csrf_token) auth.session(me.csrf_token);
    start(me);
  } catch (error) {
    signIn(error instanceof ApiError && error.status === 401 ? ssoError() : errorText(error));
  }
}

auth.onSignOut(() => signIn());
window.addEventListener("hashchange", () => (accepting() ? acceptLink(accepting()) : route()));
markDocument();
resume();
