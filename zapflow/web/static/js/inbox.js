// The inbox view: the filtered conversation list (live, cursor-paged) beside the open thread and
// the contact panel. On a phone one pane shows at a time.
import { api, qs } from "./api.js";
import { ContactPanel } from "./contact.js";
import { announce, debounce, field, h, replace, select } from "./dom.js";
import { errorText, time } from "./format.js";
import { t } from "./i18n.js";
import { Thread } from "./thread.js";

const PAGE = 50;

export class InboxView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.rows = [];
    this.cursor = null;
    this.filters = { show: "all", status: "open", q: "", tag: "", instance_id: "" };
    this.openId = null;
    this.thread = null;
    this.contact = null;
    this.generation = 0;
    this.reloadSoon = debounce(() => this.load(), 300);

    this.list = h("ul", { class: "conv-list", "aria-label": t("inbox.conversations") });
    this.status = h("p", { class: "list-status", role: "status" });
    this.sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
    this.threadPane = h("section", { class: "pane thread-pane", "aria-label": t("thread.label") });
    this.contactPane = h("aside", { class: "pane contact-pane", "aria-label": t("contact.label") });
    this.el = h(
      "div",
      { class: "inbox", "data-open": "list" },
      h(
        "section",
        { class: "pane list-pane", "aria-label": t("inbox.conversations") },
        this.filterBar(),
        this.status,
        h("div", { class: "list-scroll" }, this.list, this.sentinel),
      ),
      this.threadPane,
      this.contactPane,
    );
    root.append(this.el);
    this.list.addEventListener("keydown", (e) => this.arrowKeys(e));
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.more();
    });
    this.observer.observe(this.sentinel);
    this.showEmptyThread();
    // first list on screen (after the frame that paints it), read by the browser tests
    this.load().then(() =>
      requestAnimationFrame(() => setTimeout(() => performance.mark("zapflow:list-painted"))),
    );
  }

  destroy() {
    this.observer.disconnect();
    this.thread?.destroy();
    this.el.remove();
  }

  filterBar() {
    const search = h("input", {
      type: "search",
      value: this.filters.q,
      placeholder: t("inbox.searchPlaceholder"),
      oninput: debounce((e) => this.setFilter("q", e.target.value.trim()), 250),
    });
    const show = select(
      [
        ["all", t("inbox.all")],
        ["mine", t("inbox.mine")],
        ["unassigned", t("inbox.unassigned")],
        ["waiting", t("inbox.waiting")],
        ["teams", t("inbox.myTeams")],
        ["paused", t("inbox.paused")],
      ],
      this.filters.show,
      { onchange: (e) => this.setFilter("show", e.target.value) },
    );
    const status = select(
      [
        ["open", t("inbox.open")],
        ["closed", t("inbox.closed")],
        ["", t("inbox.anyStatus")],
      ],
      this.filters.status,
      { onchange: (e) => this.setFilter("status", e.target.value) },
    );
    const tags = h("datalist", { id: "tag-options" });
    const loadTags = () =>
      api("/tags?limit=100")
        .then((page) => replace(tags, page.data.map((tag) => h("option", { value: tag.name }))))
        .catch(() => {});
    const tag = h("input", {
      type: "text",
      list: "tag-options",
      value: this.filters.tag,
      onchange: (e) => this.setFilter("tag", e.target.value.trim()),
    });
    const instance = select([["", t("inbox.anyNumber")]], "", {
      onchange: (e) => this.setFilter("instance_id", e.target.value),
    });
    this.ctx.ready.then(() => {
      instance.append(...this.ctx.instances.map((i) => h("option", { value: i.id }, i.name)));
    });
    return h(
      "div",
      { class: "filters" },
      field(t("inbox.search"), search, { hideLabel: true }),
      field(t("inbox.show"), show, { hideLabel: true }),
      h(
        "details",
        { class: "more-filters", ontoggle: (e) => e.target.open && loadTags() },
        h("summary", {}, t("inbox.moreFilters")),
        field(t("inbox.status"), status),
        field(t("inbox.tag"), tag),
        tags,
        field(t("inbox.number"), instance),
      ),
    );
  }

  setFilter(name, value) {
    this.filters[name] = value;
    this.load();
  }

  params() {
    const f = this.filters;
    return {
      status: f.status,
      q: f.q,
      tag: f.tag,
      instance_id: f.instance_id,
      assigned: f.show === "mine" ? "me" : null,
      unassigned: f.show === "unassigned" ? "true" : null,
      waiting: f.show === "waiting" ? "true" : null,
      teams: f.show === "teams" ? "mine" : null,
      paused: f.show === "paused" ? "true" : null,
    };
  }

  async load() {
    const generation = ++this.generation;
    this.status.textContent = t("common.loading");
    try {
      const page = await api(`/conversations${qs({ ...this.params(), limit: PAGE })}`);
      if (generation !== this.generation) return;
      this.rows = page.data;
      this.cursor = page.next_cursor;
      this.renderList();
    } catch (error) {
      if (generation === this.generation) this.status.textContent = errorText(error);
    }
  }

  async more() {
    if (!this.cursor || this.loadingMore) return;
    this.loadingMore = true;
    const generation = this.generation;
    try {
      const params = { ...this.params(), limit: PAGE, cursor: this.cursor };
      const page = await api(`/conversations${qs(params)}`);
      if (generation !== this.generation) return;
      const known = new Set(this.rows.map((r) => r.id));
      this.rows.push(...page.data.filter((r) => !known.has(r.id)));
      this.cursor = page.next_cursor;
      this.renderList();
    } finally {
      this.loadingMore = false;
    }
  }

  renderList() {
    this.status.textContent = this.rows.length ? "" : t("inbox.empty");
    const focused = document.activeElement?.dataset?.id;
    replace(this.list, this.rows.map((row) => this.renderRow(row)));
    if (focused) this.list.querySelector(`[data-id="${focused}"]`)?.focus();
  }

  renderRow(row) {
    const agent = row.assigned_user_id ? this.ctx.users.get(row.assigned_user_id)?.name : null;
    const current = row.id === this.openId;
    return h(
      "li",
      {},
      h(
        "a",
        {
          href: `#/inbox/${row.id}`,
          class: `conv${current ? " current" : ""}${row.unread_count ? " unread" : ""}`,
          "data-id": row.id,
          "aria-current": current ? "true" : null,
        },
        h(
          "span",
          { class: "conv-top" },
          h("span", { class: "conv-name" }, row.contact.name || row.contact.phone_number),
          h("time", { datetime: row.last_message_at }, time(row.last_message_at)),
        ),
        h("span", { class: "conv-phone" }, row.contact.phone_number || row.remote_jid),
        h("span", { class: "conv-preview" }, row.last_message_preview || ""),
        h(
          "span",
          { class: "badges" },
          row.unread_count
            ? h("span", { class: "badge unread-count", "aria-label": t("inbox.unreadN", { n: row.unread_count }) }, row.unread_count)
            : null,
          row.is_paused
            ? h("span", { class: "badge paused" }, t("badge.paused"))
            : h("span", { class: "badge bot" }, t("badge.bot")),
          row.status === "closed" ? h("span", { class: "badge closed" }, t("badge.closed")) : null,
          agent ? h("span", { class: "badge agent" }, agent) : null,
          row.sla_breached_at && row.status === "open" ? h("span", { class: "badge sla" }, t("badge.sla")) : null,
          row.priority === "high" ? h("span", { class: "badge priority" }, t("badge.priority")) : null,
        ),
      ),
    );
  }

  arrowKeys(event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const links = [...this.list.querySelectorAll("a.conv")];
    const index = links.indexOf(document.activeElement);
    const next = links[index + (event.key === "ArrowDown" ? 1 : -1)];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  }

  // A row the live events describe: does it belong under the current filters?
  matches(row) {
    const f = this.filters;
    if (f.status && row.status !== f.status) return false;
    if (f.instance_id && row.instance_id !== f.instance_id) return false;
    if (f.show === "paused" && !row.is_paused) return false;
    if (f.show === "unassigned" && row.assigned_user_id) return false;
    if (f.show === "waiting" && !row.waiting_since) return false;
    return true;
  }

  get localFilters() {
    return !this.filters.q && !this.filters.tag && !["mine", "teams"].includes(this.filters.show);
  }

  sort() {
    this.rows.sort((a, b) => (b.last_message_at || "").localeCompare(a.last_message_at || ""));
  }

  async onEvent(event) {
    if (event.type === "resync") {
      this.load();
    } else if (event.type === "conversation.updated") {
      await this.conversationUpdated(event.data);
    } else if (event.type === "conversation.merged") {
      // a person's two chats on one number became one: the merged one's row goes, its reader follows
      this.rows = this.rows.filter((r) => r.id !== event.data.id);
      this.renderList();
      if (this.openId === event.data.id) location.hash = `#/inbox/${event.data.into}`;
    } else if (event.type === "sla.breached") {
      this.slaBreached(event.data);
    } else if (event.type === "message.created") {
      const row = this.rows.find((r) => r.id === event.conversation_id);
      if (row && event.data.direction === "outbound") {
        row.last_message_preview = event.data.body || `[${event.data.type}]`;
        this.renderList();
      }
    }
    this.thread?.onEvent(event);
    this.contact?.onEvent(event);
  }

  // the assignee and the supervisors hear of a breach (the badge shows it to everyone)
  slaBreached(breach) {
    const me = this.ctx.me.user?.id;
    if (breach.assigned_user_id !== me && !this.ctx.can("teams:manage")) return;
    const row = this.rows.find((r) => r.id === breach.conversation_id);
    announce(t("sla.breachedToast", { name: row?.contact.name || row?.contact.phone_number || "" }));
  }

    async conversationUpdated(summary) {
    const index = this.rows.findIndex((r) => r.id === summary.id);
    if (index < 0 && !this.localFilters) return this.reloadSoon();
    const row = index >= 0 ? { ...this.rows[index], ...summary } : await this.fetchRow(summary.id);
    if (!row) return;
    if (row.id === this.openId) {
      // the agent is reading it: keep it read
      if (row.unread_count) api(`/conversations/${row.id}/read`, { method: "POST" }).catch(() => {});
      row.unread_count = 0;
    }
    this.rows = this.rows.filter((r) => r.id !== row.id);
    if (this.matches(row) || !this.localFilters) this.rows.push(row);
    this.sort();
    this.renderList();
  }

  async fetchRow(id) {
    try {
      return await api(`/conversations/${id}`);
    } catch {
      return null;
    }
  }

  // Route: #/inbox or #/inbox/<conversation id>[/contact]
  async open(id, withContact) {
    this.el.dataset.open = id ? (withContact ? "contact" : "thread") : "list";
    if (id === this.openId) return;
    this.openId = id;
    this.thread?.destroy();
    this.thread = null;
    this.contact = null;
    this.list.querySelectorAll("a.conv").forEach((a) => {
      const current = a.dataset.id === id;
      a.classList.toggle("current", current);
      if (current) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    });
    if (!id) return this.showEmptyThread();
    replace(this.threadPane, h("p", { class: "placeholder" }, t("common.loading")));
    replace(this.contactPane);
    let conversation;
    try {
      conversation = await api(`/conversations/${id}`);
    } catch (error) {
      replace(this.threadPane, h("p", { class: "placeholder", role: "alert" }, errorText(error)));
      return;
    }
    if (this.openId !== id) return;
    this.thread = new Thread(this.threadPane, conversation, this.ctx, (row) => this.conversationUpdated(row));
    this.contact = new ContactPanel(this.contactPane, conversation, this.ctx);
    if (conversation.unread_count) {
      api(`/conversations/${id}/read`, { method: "POST" }).catch(() => {});
      const row = this.rows.find((r) => r.id === id);
      if (row) {
        row.unread_count = 0;
        this.renderList();
      }
    }
  }

  showEmptyThread() {
    replace(this.threadPane, h("p", { class: "placeholder" }, t("inbox.pick")));
    replace(this.contactPane);
  }
}
