// Built by plait_jupyter/js/build.mjs from plait_jupyter/js/src; do not edit.
// Bundles @dagrejs/dagre, @dagrejs/graphlib (MIT): see THIRD_PARTY_LICENSES.txt.

// src/dom.js
function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === void 0 || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(
        key.slice(2),
        /** @type {EventListener} */
        value
      );
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}
function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === void 0 || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// src/review.js
var CONTEXT = 160;
function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
function score(value) {
  return value === null || value === void 0 ? "no score" : `score ${value.toFixed(2)}`;
}
function unchanged(text, first, last) {
  const keepHead = first ? 0 : CONTEXT;
  const keepTail = last ? 0 : CONTEXT;
  if (text.length <= keepHead + keepTail + 80) return h("span", { class: "pl-eq" }, text);
  const hidden = text.slice(keepHead, text.length - keepTail);
  const span = h("span", { class: "pl-eq" });
  const fold = h(
    "button",
    {
      class: "pl-fold",
      type: "button",
      title: "show the unchanged text",
      onclick: () => fold.replaceWith(document.createTextNode(hidden))
    },
    `\u2026 ${hidden.length.toLocaleString()} unchanged characters \u2026`
  );
  span.append(text.slice(0, keepHead), fold, text.slice(text.length - keepTail));
  return span;
}
function diffView(segments) {
  const changed = segments.some(([op]) => op !== "equal");
  return h(
    "div",
    { class: "pl-diff" },
    segments.map(([op, text], i) => {
      if (op === "insert") return h("ins", { class: "pl-ins" }, text);
      if (op === "delete") return h("del", { class: "pl-del" }, text);
      return changed ? unchanged(text, i === 0, i === segments.length - 1) : h("span", { class: "pl-eq" }, text);
    })
  );
}
function statusBadge(p) {
  const label = p.applied ? `applied \xB7 v${p.version}` : p.status;
  return h("span", { class: "pl-badge", "data-status": p.applied ? "applied" : p.status }, label);
}
function feedbackView(p, ui) {
  const mean = p.mean_score === null || p.mean_score === void 0 ? "" : ` \xB7 mean score ${p.mean_score.toFixed(2)}`;
  const items = p.feedback.map((f) => {
    const tags = [score(f.score), f.kind];
    if (f.sample !== null && f.sample !== void 0) tags.push(`sample ${f.sample}`);
    return h("li", {}, h("div", { class: "pl-tags" }, tags.join(" \xB7 ")), h("div", { class: "pl-text" }, f.content));
  });
  const more = p.feedback_count - p.feedback.length;
  const details = h(
    "details",
    { class: "pl-feedback", open: ui.feedbackOpen },
    h("summary", {}, `Feedback behind it \xB7 ${plural(p.feedback_count, "item")}${mean}`),
    h("ol", {}, items),
    more > 0 ? h("div", { class: "pl-muted" }, `\u2026 and ${more} more (lowest scores are shown first)`) : null
  );
  details.addEventListener("toggle", () => ui.feedbackOpen = details.open);
  return details;
}
function stopKeys(el) {
  el.addEventListener("keydown", (event) => event.stopPropagation());
  return el;
}
var Review = class {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.cards = /* @__PURE__ */ new Map();
    this.ui = /* @__PURE__ */ new Map();
    this.build();
    this.listeners = [
      ["change:proposals", () => this.renderCards()],
      ["change:history", () => this.renderHistory()],
      ["change:info", () => this.renderHeader()],
      ["change:message", () => this.renderMessage()]
    ];
    for (const [name, fn] of this.listeners) model.on(name, fn);
    this.renderCards();
    this.renderHistory();
    this.renderMessage();
  }
  destroy() {
    for (const [name, fn] of this.listeners) this.model.off(name, fn);
  }
  send(message) {
    this.root.dataset.busy = "true";
    this.model.send(message);
  }
  build() {
    this.title = h("span", { class: "pl-title" }, "Optimizer review");
    this.sub = h("span", { class: "pl-muted" });
    this.counts = h("span", { class: "pl-counts" });
    this.cardList = h("div", { class: "pl-cards" });
    this.applyBtn = h("button", { class: "pl-btn pl-apply", type: "button", onclick: () => this.send({ type: "apply" }) }, "Apply");
    const refresh = h(
      "button",
      { class: "pl-btn pl-refresh", type: "button", title: "show changes made in code", onclick: () => this.send({ type: "refresh" }) },
      "Refresh"
    );
    this.messageEl = h("div", { class: "pl-message" });
    this.historyEl = h("details", { class: "pl-history" });
    this.root = h(
      "div",
      { class: "plait-review" },
      h("div", { class: "pl-head" }, this.title, this.sub, h("span", { class: "pl-spacer" }), this.counts),
      this.cardList,
      h("div", { class: "pl-foot" }, this.applyBtn, refresh, this.messageEl),
      this.historyEl
    );
    this.el.replaceChildren(this.root);
  }
  uiFor(key) {
    if (!this.ui.has(key)) this.ui.set(key, { mode: "view", text: "", reason: "", feedbackOpen: false, busy: false });
    return this.ui.get(key);
  }
  renderHeader() {
    const info = this.model.get("info") || {};
    const proposals = this.model.get("proposals") || [];
    const parts = [`step ${info.step ?? 0}`, plural(proposals.length, "proposal")];
    if (info.alias) parts.push(`updater "${info.alias}"`);
    this.sub.textContent = parts.join(" \xB7 ");
    const count = (test) => proposals.filter(test).length;
    const ready = count((p) => !p.applied && (p.status === "accepted" || p.status === "edited"));
    const tally = [
      ["accepted", count((p) => !p.applied && p.status === "accepted")],
      ["edited", count((p) => !p.applied && p.status === "edited")],
      ["rejected", count((p) => p.status === "rejected")],
      ["pending", count((p) => p.status === "pending")],
      ["applied", count((p) => p.applied)]
    ].filter(([, n]) => n > 0);
    this.counts.textContent = tally.map(([s, n]) => `${n} ${s}`).join(" \xB7 ");
    this.applyBtn.textContent = ready ? `Apply ${plural(ready, "decision")}` : "Apply";
    this.applyBtn.disabled = !info.can_apply || ready === 0;
    this.applyBtn.title = info.can_apply ? "set the accepted and edited values (optimizer.apply())" : "pass the Optimizer to apply from here";
  }
  renderCards() {
    const proposals = this.model.get("proposals") || [];
    const seen = /* @__PURE__ */ new Set();
    const els = proposals.map((p) => {
      seen.add(p.key);
      const json = JSON.stringify(p);
      const ui = this.uiFor(p.key);
      const old = this.cards.get(p.key);
      if (old && old.json === json && !ui.busy) return old.el;
      if (old && old.json !== json) {
        ui.mode = "view";
        ui.busy = false;
      }
      const el = this.card(p, ui);
      this.cards.set(p.key, { json, el });
      return el;
    });
    for (const key of [...this.cards.keys()]) if (!seen.has(key)) this.cards.delete(key);
    const current = [...this.cardList.children];
    if (current.length !== els.length || current.some((el, i) => el !== els[i])) {
      this.cardList.replaceChildren(...els.length ? els : [h("div", { class: "pl-empty" }, "No proposals: run `await optimizer.propose()` first.")]);
    }
    this.root.dataset.busy = "false";
    this.renderHeader();
  }
  redraw(key) {
    const entry = this.cards.get(key);
    const p = (this.model.get("proposals") || []).find((x) => x.key === key);
    if (!entry || !p) return;
    const el = this.card(p, this.uiFor(key));
    entry.el.replaceWith(el);
    entry.el = el;
  }
  card(p, ui) {
    const head = h(
      "div",
      { class: "pl-card-head" },
      h("span", { class: "pl-name" }, p.name),
      statusBadge(p),
      p.json ? h("span", { class: "pl-muted" }, "JSON value") : null
    );
    const legend = h(
      "div",
      { class: "pl-legend" },
      p.applied ? "applied change: " : p.status === "edited" ? "your edit: " : "proposed change: ",
      h("del", { class: "pl-del" }, "removed"),
      " ",
      h("ins", { class: "pl-ins" }, "added")
    );
    const parts = [head, legend, diffView(p.diff)];
    if (p.status === "edited") {
      parts.push(h("details", { class: "pl-proposed" }, h("summary", {}, "The model's proposal"), h("div", { class: "pl-text" }, p.proposed)));
    }
    if (p.status === "rejected") {
      parts.push(h("div", { class: "pl-reason" }, p.reason ? `Rejected: ${p.reason}` : "Rejected: the value stays as it is."));
    }
    parts.push(h("div", { class: "pl-rationale" }, h("span", { class: "pl-label" }, "Rationale "), p.rationale));
    parts.push(feedbackView(p, ui));
    if (!p.applied) parts.push(this.actions(p, ui));
    return h("div", { class: "pl-card", "data-key": p.key, "data-status": p.applied ? "applied" : p.status }, parts);
  }
  actions(p, ui) {
    const again = () => this.redraw(p.key);
    const button = (label, cls, onclick, disabled = false) => h("button", { class: `pl-btn ${cls}`, type: "button", onclick, disabled: disabled || ui.busy }, label);
    if (ui.mode === "edit") {
      const area = stopKeys(h("textarea", { class: "pl-edit", rows: Math.min(14, Math.max(3, ui.text.split("\n").length + 1)), spellcheck: "false" }));
      area.value = ui.text;
      area.addEventListener("input", () => ui.text = area.value);
      const save = () => {
        ui.busy = true;
        this.send({ type: "edit", key: p.key, value: area.value });
        again();
      };
      return h(
        "div",
        { class: "pl-editor" },
        area,
        h("div", { class: "pl-actions" }, button("Save edit", "pl-save", save), button("Cancel", "pl-cancel", () => (ui.mode = "view", again())))
      );
    }
    if (ui.mode === "reject") {
      const reason = stopKeys(h("input", { class: "pl-reason-input", type: "text", placeholder: "reason (optional)" }));
      reason.value = ui.reason;
      reason.addEventListener("input", () => ui.reason = reason.value);
      const confirm = () => {
        ui.busy = true;
        this.send({ type: "reject", key: p.key, reason: reason.value });
        again();
      };
      reason.addEventListener("keydown", (event) => event.key === "Enter" && confirm());
      return h(
        "div",
        { class: "pl-actions" },
        reason,
        button("Reject", "pl-confirm-reject", confirm),
        button("Cancel", "pl-cancel", () => (ui.mode = "view", again()))
      );
    }
    const decide = (type) => () => {
      ui.busy = true;
      this.send({ type, key: p.key });
      again();
    };
    const edit = () => {
      ui.mode = "edit";
      ui.text = p.new;
      again();
      this.cards.get(p.key).el.querySelector("textarea")?.focus();
    };
    const reject = () => {
      ui.mode = "reject";
      again();
      this.cards.get(p.key).el.querySelector("input")?.focus();
    };
    return h(
      "div",
      { class: "pl-actions" },
      button("Accept", "pl-accept", decide("accept"), p.status === "accepted"),
      button("Edit", "pl-edit-btn", edit),
      button("Reject", "pl-reject", reject, p.status === "rejected")
    );
  }
  renderMessage() {
    const message = this.model.get("message") || {};
    this.messageEl.textContent = message.text || "";
    this.messageEl.dataset.kind = message.kind || "";
    this.root.dataset.busy = "false";
    for (const [key, ui] of this.ui) {
      if (ui.busy) {
        ui.busy = false;
        this.redraw(key);
      }
    }
  }
  renderHistory() {
    const steps = this.model.get("history") || [];
    const changes = steps.reduce((n, s) => n + s.changes.length, 0);
    const open = this.historyEl.open;
    const stepsApplied = steps.filter((s) => s.changes.length).length;
    const summary = changes ? `History \xB7 ${plural(changes, "change")} applied in ${plural(stepsApplied, "step")}` : `History \xB7 nothing applied yet${steps.length ? ` (${plural(steps.length, "step")} proposed)` : ""}`;
    const body = steps.map((s) => {
      const counts = Object.entries(s.counts).map(([event, n]) => `${n} ${event}`).join(" \xB7 ");
      return h(
        "div",
        { class: "pl-step" },
        h("div", { class: "pl-step-head" }, h("b", {}, `Step ${s.step}`), counts ? ` \xB7 ${counts}` : ""),
        s.changes.map(
          (c) => h(
            "div",
            { class: "pl-change" },
            h("div", {}, h("span", { class: "pl-name" }, c.name), ` \xB7 ${c.status} \xB7 now version ${c.version}`),
            diffView(c.diff)
          )
        ),
        s.changes.length ? null : h("div", { class: "pl-muted" }, "no change applied")
      );
    });
    this.historyEl.replaceChildren(h("summary", {}, summary), ...body);
    this.historyEl.open = open;
    this.renderHeader();
  }
};
var review_default = {
  render({ model, el }) {
    const review = new Review(model, el);
    return () => review.destroy();
  }
};
export {
  review_default as default,
  diffView
};
