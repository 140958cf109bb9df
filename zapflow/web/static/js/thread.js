// One conversation: its header (bot paused or active, close), the virtualized message history
// (older pages load as the agent scrolls up) and the composer. Sending takes the conversation
// over: the bot is paused first, visibly, and a button resumes it. System notes (assigned,
// transferred, SLA breached) are lines between the messages, in time order, live too.
import { api, qs } from "./api.js";
import { CannedSuggestions } from "./canned.js";
import { announce, field, h, replace, select } from "./dom.js";
import { errorText, newId, time, webUrl } from "./format.js";
import { t } from "./i18n.js";
import { VirtualList } from "./virtual.js";

const PAGE = 100;
const MEDIA = new Set(["image", "audio", "video", "document", "sticker"]);
const TICKS = {
  pending: "🕓",
  sending: "🕓",
  sent: "✓",
  delivered: "✓✓",
  read: "✓✓",
  failed: "!",
};
const RANK = { pending: 0, sending: 1, sent: 2, delivered: 3, read: 4, failed: 5 };
const SENDERS = { ai: "sender.ai", flow: "sender.flow", followup: "sender.followup" };
const when = (m) => Date.parse(m.system ? m.created_at : m.provider_timestamp || m.created_at);

export class Thread {
  constructor(pane, conversation, ctx, onConversation) {
    this.conversation = conversation;
    this.ctx = ctx;
    this.onConversation = onConversation;
    this.byKey = new Map(); // provider message id → message, for reply quotes
    this.cursor = null;
    this.loadingOlder = false;

    this.header = h("header", { class: "thread-head" });
    this.scroller = h("div", {
      class: "messages",
      tabindex: "0",
      role: "region",
      "aria-label": t("thread.messages"),
    });
    this.sendError = h("div", { class: "send-error", role: "alert" });
    this.input = h("textarea", {
      id: "composer-input",
      rows: "2",
      placeholder: t("composer.placeholder"),
      onkeydown: (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.submit();
        }
      },
    });
    // a canned response's media, sent after the text (each a media message); × drops one
    this.attachments = [];
    this.attached = h("ul", { class: "composer-attachments", "aria-label": t("composer.attachments") });
    this.canned = new CannedSuggestions(this.input, ctx, conversation, (media, buttons) => this.attach(media, buttons));
    // quick-reply buttons: up to 3 titles separated by "|" turn the message into reply buttons;
    // a canned response's buttons fill it in and keep their ids (flows and triggers match ids)
    this.buttonIds = new Map();
    this.buttons = h("input", {
      id: "composer-buttons",
      type: "text",
      maxlength: "80",
      placeholder: t("composer.buttonsPlaceholder"),
    });
    const composer = h(
      "form",
      { class: "composer", onsubmit: (e) => (e.preventDefault(), this.submit()) },
      this.canned.el,
      this.attached,
      h("label", { for: "composer-input", class: "visually-hidden" }, t("composer.label")),
      this.input,
      h("label", { for: "composer-buttons", class: "visually-hidden" }, t("composer.buttons")),
      this.buttons,
      h("label", { class: "button", title: t("composer.upload") }, "📎", h("span", { class: "visually-hidden" }, t("composer.upload")),
        h("input", { type: "file", class: "visually-hidden", onchange: (e) => this.upload(e.target) })),
      h("button", { type: "submit", class: "primary" }, t("composer.send")),
    );
    replace(pane, this.header, this.scroller, this.sendError, composer);
    this.list = new VirtualList(this.scroller, {
      key: (m) => m.client_id || m.id,
      render: (m) => this.renderMessage(m),
    });
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop < 400) this.older();
    });
    this.renderHeader();
    this.load();
  }

  destroy() {
    this.list.destroy();
  }

  renderHeader() {
    const c = this.conversation;
    const paused = c.is_paused;
    replace(
      this.header,
      h("a", { href: "#/inbox", class: "back button", "aria-label": t("thread.back") }, "←"),
      h(
        "div",
        { class: "who" },
        h("h2", {}, c.contact.name || c.contact.phone_number),
        h("span", { class: "muted" }, [c.contact.phone_number, c.instance_name].filter(Boolean).join(" · ")),
      ),
      h(
        "span",
        { class: `badge ${paused ? "paused" : "bot"}`, role: "status", "data-bot": paused ? "paused" : "active" },
        paused ? t("thread.botPaused") : t("thread.botActive"),
      ),
      c.sla_breached_at && c.status === "open" && h("span", { class: "badge sla", "data-sla": "breached" }, t("badge.sla")),
      c.priority === "high" && h("span", { class: "badge priority" }, t("badge.priority")),
      h(
        "div",
        { class: "actions" },
        paused
          ? h("button", { type: "button", onclick: () => this.act("resume") }, t("thread.resume"))
          : h("button", { type: "button", onclick: () => this.act("pause") }, t("thread.pause")),
        this.assignment(c),
        c.status === "closed"
          ? h("button", { type: "button", onclick: () => this.act("reopen") }, t("thread.reopen"))
          : h("button", { type: "button", onclick: () => this.act("close") }, t("thread.close")),
        h("a", { href: `#/inbox/${c.id}/contact`, class: "button contact-toggle" }, t("contact.open")),
      ),
    );
  }

  // who has it: "Assign to me" when it is not mine, "Unassign" when it is someone's
  assignment(c) {
    const me = this.ctx.me.user?.id;
    const who = c.assigned_user_id && (this.ctx.users.get(c.assigned_user_id)?.name ?? "?");
    return [
      h("span", { class: "assignee muted", "data-assignee": c.assigned_user_id || "" }, who ? t("thread.assignedTo", { name: who }) : c.waiting_since ? t("thread.waiting") : t("thread.nobody")),
      me && c.assigned_user_id !== me && h("button", { type: "button", onclick: () => this.act("take") }, t("thread.take")),
      c.assigned_user_id && h("button", { type: "button", onclick: () => this.act("unassign") }, t("thread.unassign")),
      this.menu("assign", "thread.assignTo", [...this.ctx.users.values()].filter((u) => u.is_active !== false && u.id !== c.assigned_user_id), "user_id"),
      this.menu("transfer", "thread.transferTo", [...this.ctx.teams.values()], "team_id"),
    ];
  }

  // the assign menu (a person of the company) and the transfer menu (a team)
  menu(action, label, choices, key) {
    if (!choices.length) return null;
    const picker = select(choices.map((x) => [x.id, x.name]), choices[0].id);
    const go = () => this.act(action, { [key]: picker.value });
    return h("span", { class: `menu ${action}` }, field(t(label), picker, { hideLabel: true }),
      h("button", { type: "button", onclick: go }, t(`thread.${action}`)));
  }

  async act(action, body = undefined) {
    try {
      const summary = await api(`/conversations/${this.conversation.id}/${action}`, { method: "POST", body });
      this.updateConversation(summary);
      if (action === "pause") announce(t("thread.botPaused"));
      if (action === "resume") announce(t("thread.botActive"));
    } catch (error) {
      this.showError(errorText(error));
    }
  }

  updateConversation(summary) {
    this.conversation = { ...this.conversation, ...summary };
    this.renderHeader();
    this.onConversation(this.conversation);
  }

  async load() {
    try {
      const [page, notes] = await Promise.all([
        api(`/conversations/${this.conversation.id}/messages${qs({ limit: PAGE })}`),
        api(`/conversations/${this.conversation.id}/system-notes`).catch(() => []),
      ]);
      this.notes = notes.map((n) => ({ ...n, system: true, id: `note-${n.id}` }));
      this.cursor = page.next_cursor;
      const messages = page.data.reverse();
      messages.forEach((m) => this.remember(m));
      this.list.setItems(this.withNotes(messages));
    } catch (error) {
      this.showError(errorText(error));
    }
  }

  async older() {
    if (!this.cursor || this.loadingOlder) return;
    this.loadingOlder = true;
    try {
      const path = `/conversations/${this.conversation.id}/messages${qs({ limit: PAGE, cursor: this.cursor })}`;
      const page = await api(path);
      this.cursor = page.next_cursor;
      const messages = page.data.reverse();
      messages.forEach((m) => this.remember(m));
      this.list.prepend(this.withNotes(messages));
    } catch (error) {
      this.showError(errorText(error));
    } finally {
      this.loadingOlder = false;
    }
  }

  // the notes that belong among these (older) messages: since the oldest of them, or all that
  // are left once the first message is loaded
  withNotes(messages) {
    const from = this.cursor && messages.length ? when(messages[0]) : -Infinity;
    const taken = this.notes.filter((n) => when(n) >= from);
    this.notes = this.notes.filter((n) => when(n) < from);
    return [...messages, ...taken].sort((a, b) => when(a) - when(b));
  }

  remember(message) {
    if (message.message_key_id) this.byKey.set(message.message_key_id, message);
  }

  find(test) {
    return this.list.items.find(test);
  }

  onEvent(event) {
    if (event.conversation_id !== this.conversation.id) return;
    if (event.type === "conversation.updated") this.updateConversation(event.data);
    else if (event.type === "message.created") this.messageCreated(event.data);
    else if (event.type === "message.status") this.messageStatus(event.data);
    else if (event.type === "system_note.created") this.list.append({ ...event.data, system: true, id: `note-${event.data.id}` });
  }

  messageCreated(message) {
    const known =
      this.find((m) => m.id === message.id) ||
      (message.client_id && this.find((m) => m.client_id === message.client_id));
    this.remember(message);
    if (known) {
      Object.assign(known, message, { local: false });
      this.list.refresh(this.list.key(known));
      return;
    }
    this.list.append(message);
    if (message.direction === "inbound") {
      announce(t("thread.newMessage", { name: this.conversation.contact.name }));
    }
  }

  messageStatus(change) {
    const message = this.find((m) => m.id === change.id);
    if (!message) return;
    Object.assign(message, change);
    this.remember(message);
    this.list.refresh(this.list.key(message));
  }

  renderNote(n) {
    const name = (id) => (id && this.ctx.users.get(id)?.name) || t("note.someone");
    const team = (n.team_id && this.ctx.teams.get(n.team_id)?.name) || "?";
    const vars = { actor: name(n.actor_user_id), user: name(n.user_id), team, target: t(`sla.${n.detail}`) };
    // who did it: a person, the team's routing, an SLA escalation, or an integration's key
    let key = `note.${n.kind}`;
    if (n.detail === "routing") key = "note.routed";
    else if (n.detail === "sla") key = "note.unassignedBySla";
    else if (!n.actor_user_id && n.kind !== "sla_breached") key = `note.${n.kind}Anon`;
    return h("div", { class: "system-note", "data-kind": n.kind, role: "note" },
      h("span", {}, t(key, vars)), " ", h("time", { datetime: n.created_at }, time(n.created_at)));
  }

  renderMessage(m) {
    if (m.system) return this.renderNote(m);
    const out = m.direction === "outbound";
    const sender = SENDERS[m.sent_by];
    return h(
      "div",
      { class: `msg ${out ? "out" : "in"}`, "data-id": m.id, "data-type": m.type },
      h(
        "div",
        { class: "bubble" },
        m.reply_to_key_id ? this.quote(m.reply_to_key_id) : null,
        this.content(m),
        h(
          "div",
          { class: "meta" },
          sender ? h("span", { class: `sender ${m.sent_by}`, "data-sender": m.sent_by }, t(sender)) : null,
          h("time", { datetime: m.provider_timestamp }, time(m.provider_timestamp)),
          out ? this.ticks(m) : null,
        ),
        out && m.status === "failed" ? this.failure(m) : null,
      ),
    );
  }

  ticks(m) {
    return h(
      "span",
      { class: `ticks ${m.status}`, "data-status": m.status, title: t(`status.${m.status}`), "aria-label": t(`status.${m.status}`) },
      TICKS[m.status] || "",
    );
  }

  failure(m) {
    return h(
      "div",
      { class: "failure" },
      h("span", {}, `${t("composer.failed")}: ${errorText(m.error)}`),
      h("button", { type: "button", onclick: () => this.retry(m) }, t("composer.retry")),
    );
  }

  quote(keyId) {
    const quoted = this.byKey.get(keyId);
    return h("blockquote", { class: "quote" }, quoted ? quoted.body || `[${quoted.type}]` : t("thread.replyTo"));
  }

  content(m) {
    if (MEDIA.has(m.type)) {
      const media = m.media || {};
      const label = h("span", { class: "kind" }, t(`type.${m.type}`));
      // an uploaded file: its download (the API answers it as an attachment, never a page)
      const url = media.media_id ? `/api/v1/media/${encodeURIComponent(media.media_id)}/content` : webUrl(media.url);
      const link = url
        ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, media.filename || t("thread.openMedia"))
        : media.filename
          ? h("span", {}, media.filename)
          : null;
      return h("div", { class: "content" }, label, " ", link, m.body ? h("p", {}, m.body) : null);
    }
    if (m.type === "location") {
      const p = m.payload || {};
      const where = [p.name, p.address].filter(Boolean).join(", ") || `${p.latitude}, ${p.longitude}`;
      const href = webUrl(p.url) || `https://www.openstreetmap.org/?mlat=${encodeURIComponent(p.latitude)}&mlon=${encodeURIComponent(p.longitude)}`;
      return h("div", { class: "content" }, h("span", { class: "kind" }, t("type.location")), " ",
        h("a", { href, target: "_blank", rel: "noopener noreferrer" }, where));
    }
    if (m.type === "reaction") {
      const target = this.byKey.get(m.payload?.target_key_id);
      return h("div", { class: "content" }, h("span", { class: "reaction" }, m.payload?.emoji || "∅"), " ",
        h("span", { class: "muted" }, target ? `↪ ${target.body || `[${target.type}]`}` : t("type.reaction")));
    }
    if (m.type === "interactive" || m.type === "button") return this.choice(m);
    if (m.type === "text" || m.body) return h("p", { class: "content text" }, m.body);
    return h("p", { class: "content muted" }, `[${t(`type.${m.type}`)}]`);
  }

  // A tapped reply button, list row or template quick reply (its id beside the title; a number
  // typed under numbered choices says what was typed), or the buttons an agent or a flow sent.
  choice(m) {
    const p = m.payload || {};
    const sent = p.outbound?.interactive;
    if (sent) {
      const choices = sent.buttons || (sent.sections || []).flatMap((s) => s.rows);
      return h("div", { class: "content" }, h("p", { class: "text" }, sent.body),
        h("div", { class: "choices" }, choices.map((c) => h("span", { class: "chip", "data-choice-id": c.id }, c.title))),
        p.outbound.fallback ? h("p", { class: "muted" }, t("thread.numberedFallback")) : null);
    }
    const id = p.id ?? p.payload;
    return h("div", { class: "content" }, h("span", { class: "kind" }, t(`type.${m.type}`)), " ",
      h("span", { class: "chip", "data-choice-id": id ?? "" }, `↩ ${m.body || p.title || p.text || ""}`),
      id ? h("span", { class: "muted" }, ` (${id})`) : null,
      p.typed ? h("span", { class: "muted typed" }, ` · ${t("thread.typedNumber", { typed: p.typed })}`) : null);
  }

  showError(text, retry) {
    replace(this.sendError, text ? h("span", {}, text) : null, retry ? h("button", { type: "button", onclick: retry }, t("composer.retry")) : null);
  }

  // A file the agent picks: uploaded now (POST /media), sent after the text like a canned
  // response's attachment.
  async upload(input) {
    const [file] = input.files;
    input.value = "";
    if (!file) return;
    try {
      const stored = await api(`/media${qs({ filename: file.name })}`, { method: "POST", body: file });
      this.attach([{ media_id: stored.id, kind: stored.kind, filename: stored.filename }]);
    } catch (error) {
      this.showError(`${t("composer.failed")}: ${errorText(error)}`);
    }
  }

  attach(media, buttons = []) {
    this.attachments.push(...media);
    this.renderAttachments();
    if (!buttons.length) return;
    this.buttonIds = new Map(buttons.map((b) => [b.title, b.id]));
    this.buttons.value = buttons.map((b) => b.title).join(" | ");
  }

  renderAttachments() {
    replace(
      this.attached,
      this.attachments.map((media, i) =>
        h("li", { class: "chip" }, `${t(`type.${media.kind}`)}: ${media.filename || media.caption || (media.url || "").split("/").pop()}`, " ",
          h("button", { type: "button", class: "link", "aria-label": t("composer.detach"),
            onclick: () => (this.attachments.splice(i, 1), this.renderAttachments()) }, "×")),
      ),
    );
  }

  async submit() {
    const text = this.input.value.trim();
    const attachments = this.attachments;
    if (!text && !attachments.length) return;
    const titles = this.buttons.value.split("|").map((b) => b.trim()).filter(Boolean);
    this.input.value = "";
    this.buttons.value = "";
    this.attachments = [];
    this.renderAttachments();
    const ids = this.buttonIds;
    this.buttonIds = new Map();
    const interactive = titles.length && text
      ? { type: "button", body: text, buttons: titles.map((title, i) => ({ id: ids.get(title) ?? `b${i + 1}`, title })) }
      : null;
    if (text) await this.send(text, newId(), interactive);
    for (const media of attachments) await this.send(media.caption || "", newId(), null, media);
  }

  // A send the API refused keeps its client_id (idempotent); one the provider failed is new.
  retry(message) {
    const media = message.media?.url || message.media?.media_id ? message.media : null;
    this.send(message.body, message.local ? message.client_id : newId(), null, media);
  }

  // Sends as the agent: takes the conversation over from the bot first (visibly).
  async send(text, clientId, interactive = null, media = null) {
    this.showError("");
    let local = this.find((m) => m.client_id === clientId);
    if (!local) {
      const now = new Date().toISOString();
      local = {
        id: `local-${clientId}`, client_id: clientId, direction: "outbound", from_me: true, type: media ? media.kind : "text",
        body: text, media, status: "pending", sent_by: "agent", provider_timestamp: now, created_at: now, local: true,
      };
      this.list.append(local);
    }
    try {
      if (!this.conversation.is_paused) {
        await this.act("pause");
        announce(t("composer.tookOver"));
      }
      const sent = await api(`/conversations/${this.conversation.id}/messages`, {
        method: "POST",
        body: media
          ? { type: "media", media, client_id: clientId }
          : interactive
            ? { type: "interactive", interactive, client_id: clientId }
            : { type: "text", text, client_id: clientId },
      });
      // its live events may have come first: never move the status back
      const ahead = !local.local && RANK[local.status] > RANK[sent.status];
      Object.assign(local, sent, { local: false }, ahead ? { status: local.status } : {});
      this.remember(local);
      this.list.refresh(clientId);
    } catch (error) {
      local.status = "failed";
      local.error = { message: errorText(error) };
      this.list.refresh(clientId);
      this.showError(`${t("composer.failed")}: ${errorText(error)}`, () => this.send(text, clientId, interactive, media));
    }
  }
}
