// People: the admin's settings (invite a person, hand out a reset link: each a one-time link
// shown here, no mail server needed; the company's business hours; whether each WhatsApp
// number sends read receipts) and everyone's own account (password, signed-in browsers, canned
// responses, the company's uploaded files).
import { all, api } from "./api.js";
import { BusinessHoursEditor } from "./business-hours.js";
import { CannedManager } from "./canned-manager.js";
import { field, h, replace, select } from "./dom.js";
import { dateTime, errorText } from "./format.js";
import { t } from "./i18n.js";
import { MediaFiles } from "./media-files.js";

const ROLES = ["agent", "supervisor", "admin"];

function linkBox(result) {
  const input = h("input", { type: "text", readonly: true, value: result.link, class: "link-box" });
  return h(
    "div",
    { class: "issued-link", role: "status" },
    h("p", {}, t(`people.${result.kind}Link`, { name: result.user.name })),
    field(t("people.link"), input),
  );
}

export class SettingsView {
  constructor(root, ctx) {
    this.hours = ctx.can("company:manage") ? new BusinessHoursEditor() : null;
    this.email = h("input", { type: "email", required: true });
    this.name = h("input", { type: "text", required: true, maxlength: "120" });
    this.role = select(ROLES.map((r) => [r, t(`role.${r}`)]), "agent");
    this.issued = h("div");
    this.list = h("ul", { class: "people" });
    this.numbers = h("ul", { class: "numbers" });
    this.numbersStatus = h("p", { role: "status" });
    this.error = h("p", { class: "error", role: "alert" });
    this.el = h(
      "section",
      { class: "settings", "aria-labelledby": "settings-h" },
      h("h2", { id: "settings-h" }, t("people.title")),
      h(
        "form",
        { class: "invite-form", onsubmit: (e) => (e.preventDefault(), this.invite()) },
        h("h3", {}, t("people.invite")),
        field(t("people.email"), this.email),
        field(t("people.name"), this.name),
        field(t("people.role"), this.role),
        h("button", { type: "submit", class: "primary" }, t("people.send")),
      ),
      this.error,
      this.issued,
      this.list,
      this.hours?.el,
      h("h3", {}, t("numbers.title")),
      this.numbers,
      this.numbersStatus,
    );
    root.append(this.el);
  }

  destroy() {
    this.el.remove();
  }

  async open() {
    this.hours?.load();
    try {
      const [users, instances, company] = await Promise.all([all("/users"), api("/instances"), api("/company")]);
      replace(this.list, users.map((user) => this.row(user)));
      replace(this.numbers, instances.map((instance) => this.number(instance, company.settings.mark_read === true)));
    } catch (error) {
      this.error.textContent = errorText(error);
    }
  }

  // a number's own read-receipt setting; one never set follows the company's
  number(instance, companyDefault) {
    const box = h("input", { type: "checkbox", checked: instance.settings.mark_read ?? companyDefault });
    box.addEventListener("change", async () => {
      this.numbersStatus.textContent = "";
      try {
        const settings = { ...instance.settings, mark_read: box.checked };
        instance = await api(`/instances/${instance.id}`, { method: "PATCH", body: { settings } });
        this.numbersStatus.textContent = t("numbers.saved");
      } catch (error) {
        box.checked = !box.checked;
        this.numbersStatus.textContent = errorText(error);
      }
    });
    return h("li", { "data-instance": instance.id }, h("label", {}, box, " ", t("numbers.readReceipts", { name: instance.name })));
  }

  row(user) {
    return h(
      "li",
      { "data-user": user.id },
      h("strong", {}, user.name),
      " ",
      h("span", { class: "muted" }, `${user.email} · ${t(`role.${user.role}`)}`),
      h(
        "button",
        { type: "button", onclick: () => this.resetLink(user), "aria-label": t("people.resetFor", { name: user.name }) },
        t("people.reset"),
      ),
    );
  }

  async invite() {
    this.error.textContent = "";
    try {
      const body = { email: this.email.value, name: this.name.value, role: this.role.value };
      const result = await api("/users/invites", { method: "POST", body });
      replace(this.issued, linkBox(result));
      this.email.value = this.name.value = "";
      await this.open();
    } catch (error) {
      this.error.textContent = errorText(error);
    }
  }

  async resetLink(user) {
    this.error.textContent = "";
    try {
      replace(this.issued, linkBox(await api(`/users/${user.id}/reset-link`, { method: "POST" })));
    } catch (error) {
      this.error.textContent = errorText(error);
    }
  }
}

export class AccountView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.current = h("input", { type: "password", autocomplete: "current-password", required: true });
    this.next = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 10 });
    this.status = h("p", { role: "status" });
    this.sessions = h("ul", { class: "sessions" });
    const person = Boolean(ctx.me.session_id);
    this.el = h(
      "section",
      { class: "account", "aria-labelledby": "account-h" },
      h("h2", { id: "account-h" }, t("account.title")),
      person &&
        h(
          "form",
          { onsubmit: (e) => (e.preventDefault(), this.changePassword()) },
          h("h3", {}, t("account.password")),
          field(t("account.current"), this.current),
          field(t("account.new"), this.next),
          h("button", { type: "submit", class: "primary" }, t("account.change")),
        ),
      this.status,
      person && h("h3", {}, t("account.sessions")),
      this.sessions,
    );
    if (ctx.can("media:read")) this.media = new MediaFiles(ctx);
    if (ctx.can("canned:write")) {
      this.canned = new CannedManager(ctx, () => this.media?.load());
      this.el.append(this.canned.el);
    }
    if (this.media) this.el.append(this.media.el);
    root.append(this.el);
  }

  destroy() {
    this.el.remove();
  }

  async open() {
    await Promise.all([this.canned?.load(), this.media?.load()]);
    if (!this.ctx.me.session_id) return;
    const rows = await api("/me/sessions");
    replace(
      this.sessions,
      rows.map((s) =>
        h(
          "li",
          {},
          `${s.user_agent || "?"} · ${s.ip || ""} · ${dateTime(s.last_seen_at)}`,
          s.current
            ? h("span", { class: "muted" }, ` (${t("account.thisOne")})`)
            : h("button", { type: "button", onclick: () => this.revoke(s.id) }, t("account.revoke")),
        ),
      ),
    );
  }

  async revoke(id) {
    await api(`/me/sessions/${id}`, { method: "DELETE" });
    await this.open();
  }

  async changePassword() {
    try {
      const body = { current_password: this.current.value, new_password: this.next.value };
      await api("/me/password", { method: "POST", body });
      this.current.value = this.next.value = "";
      this.status.textContent = t("account.changed");
      await this.open();
    } catch (error) {
      this.status.textContent = errorText(error);
    }
  }
}
