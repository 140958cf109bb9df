// The app shell: sign-in with an API key, the header (navigation, live status, language), the
// hash routes (#/inbox[/id[/contact]], #/board[/funnel], #/flows[/id]) and the one live stream
// whose events every view receives.
import { all, api, ApiError, auth } from "./api.js";
import { BoardView } from "./board.js";
import { field, h, replace, select } from "./dom.js";
import { FlowsView } from "./flows.js";
import { FollowUpsPanel } from "./followups.js";
import { errorText } from "./format.js";
import { LANGUAGES, lang, markDocument, setLang, t } from "./i18n.js";
import { InboxView } from "./inbox.js";
import { LiveStream } from "./live.js";
import { MergePanel } from "./merge.js";
import { SearchView } from "./search.js";

const root = document.getElementById("root");
const VIEWS = { inbox: InboxView, board: BoardView, flows: FlowsView, search: SearchView };
let live = null;
let view = null;
let viewName = null;
let ctx = null;
let statusPill = null;
let liveState = "connecting";
let companyName = null;

function signIn(message) {
  stop();
  const key = h("input", { type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const form = h(
    "form",
    {
      class: "signin card",
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        try {
          await api("/company", { key: key.value.trim() });
          auth.set(key.value.trim());
          start();
        } catch (err) {
          error.textContent = err instanceof ApiError && err.status === 401 ? t("signin.invalid") : errorText(err);
        }
      },
    },
    h("h1", {}, "zapflow"),
    h("p", {}, t("signin.intro")),
    field(t("signin.key"), key),
    h("button", { type: "submit", class: "primary" }, t("signin.submit")),
    error,
    languagePicker(),
  );
  replace(root, h("main", { class: "signin-page" }, form));
  key.focus();
}

function languagePicker() {
  const picker = select(
    LANGUAGES.map((code) => [code, code.toUpperCase()]),
    lang(),
    { onchange: (e) => (setLang(e.target.value), auth.key ? start() : signIn()) },
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

function start() {
  stop();
  // the view's first request goes out first; what the views share arrives alongside it
  let shared;
  ctx = { users: new Map(), instances: [], funnels: [], panels: [FollowUpsPanel, MergePanel] };
  ctx.ready = new Promise((resolve) => (shared = resolve));
  shell();
  route();
  live = new LiveStream({ key: auth.key, onEvent: dispatch, onState: setLiveState });
  live.start();
  shared(
    Promise.all([
      api("/company").then((company) => (companyName.textContent = company.name)),
      all("/users").then((users) => (ctx.users = new Map(users.map((u) => [u.id, u])))).catch(() => {}),
      api("/instances").then((instances) => (ctx.instances = instances)),
      api("/funnels").then((funnels) => (ctx.funnels = funnels)),
    ]),
  );
  ctx.ready.catch((error) => auth.key && signIn(errorText(error)));
}

function shell() {
  statusPill = h("span", { class: "live-status", role: "status", "aria-live": "polite" });
  setLiveState(liveState);
  const nav = h(
    "nav",
    { "aria-label": t("nav.label") },
    Object.keys(VIEWS).map((name) => h("a", { href: `#/${name}`, "data-view": name }, t(`nav.${name}`))),
  );
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
      languagePicker(),
      h("button", { type: "button", onclick: () => auth.clear() }, t("signin.out")),
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
  const wanted = VIEWS[name] ? name : "inbox";
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

auth.onSignOut(() => signIn());
window.addEventListener("hashchange", route);
markDocument();
if (auth.key) start();
else signIn();
