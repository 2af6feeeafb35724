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
function clip(text, limit) {
  const s = String(text ?? "");
  return s.length <= limit ? s : s.slice(0, Math.max(1, limit - 1)) + "\u2026";
}
function seconds(value) {
  if (value === null || value === void 0) return "\u2013";
  return value >= 1 ? `${value.toFixed(2)} s` : `${(value * 1e3).toFixed(0)} ms`;
}
function dollars(value) {
  const amount = value ?? 0;
  if (amount === 0 || !Number.isFinite(amount)) return `$${amount.toFixed(2)}`;
  const sign = amount < 0 ? "-" : "";
  const abs = Math.abs(amount);
  if (abs >= 1) {
    const shown = abs.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return `${sign}$${shown}`;
  }
  const decimals = Math.min(Math.max(2, 2 - Math.floor(Math.log10(abs))), 15);
  const [whole, frac = ""] = abs.toFixed(decimals).replace(/0+$/, "").split(".");
  return `${sign}$${whole}.${frac.padEnd(2, "0")}`;
}

// src/review.js
var CONTEXT = 160;
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

// src/evaluation.js
var MAX_ROWS = 500;
function num(value, digits = 2) {
  return value === null || value === void 0 ? "\u2013" : value.toFixed(digits);
}
function signed(value) {
  if (value === null || value === void 0) return "\u2013";
  return `${value > 0 ? "+" : ""}${value.toFixed(2)}`;
}
function tone(value) {
  if (value === null || value === void 0) return "none";
  return value > 0 ? "up" : value < 0 ? "down" : "same";
}
function scoreTone(value) {
  if (value === null || value === void 0) return "none";
  return value >= 1 ? "pass" : value <= 0 ? "fail" : "partial";
}
var RESULT_COLUMNS = [
  { key: "index", label: "#", cell: (r) => String(r.index) },
  { key: "input", label: "input", cell: (r) => clip(r.input, 160), wide: true },
  { key: "target", label: "target", cell: (r) => clip(r.target, 80) },
  { key: "output", label: "output", cell: (r) => clip(r.output, 200), wide: true },
  {
    key: "score",
    label: "score",
    cell: (r) => h("span", { class: "pl-score", "data-tone": scoreTone(r.score) }, num(r.score))
  },
  {
    key: "message",
    label: "message / error",
    cell: (r) => r.error ? h("span", { class: "pl-error" }, clip(r.error, 200)) : clip(r.message, 200),
    wide: true
  },
  { key: "tokens", label: "tokens", cell: (r) => String(r.tokens) },
  { key: "cost", label: "cost", cell: (r) => dollars(r.cost) },
  { key: "latency", label: "latency", cell: (r) => seconds(r.latency) }
];
var COMPARISON_COLUMNS = [
  { key: "index", label: "#", cell: (r) => String(r.index) },
  { key: "input", label: "input", cell: (r) => clip(r.input, 140), wide: true },
  { key: "target", label: "target", cell: (r) => clip(r.target, 60) },
  {
    key: "diff",
    label: "output (before \u2192 after)",
    cell: (r) => r.changed ? diffView(r.diff) : h("span", { class: "pl-muted" }, clip(r.output_after, 200)),
    wide: true,
    sort: (r) => r.changed ? 1 : 0
  },
  {
    key: "score_before",
    label: "before",
    cell: (r) => h("span", { class: "pl-score", "data-tone": scoreTone(r.score_before) }, num(r.score_before))
  },
  {
    key: "score_after",
    label: "after",
    cell: (r) => h("span", { class: "pl-score", "data-tone": scoreTone(r.score_after) }, num(r.score_after))
  },
  {
    key: "delta",
    label: "delta",
    cell: (r) => h("span", { class: "pl-delta", "data-tone": tone(r.delta) }, signed(r.delta))
  }
];
function sortValue(column, row) {
  const value = column.sort ? column.sort(row) : row[column.key];
  return value === null || value === void 0 ? -Infinity : value;
}
var EvalTable = class {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.ui = { sort: "index", descending: false, query: "", failuresOnly: false, changedOnly: false };
    this.onChange = () => this.render();
    for (const name of ["rows", "info", "opened"]) model.on(`change:${name}`, this.onChange);
    this.render();
  }
  destroy() {
    for (const name of ["rows", "info", "opened"]) this.model.off(`change:${name}`, this.onChange);
  }
  columns() {
    return this.model.get("info").mode === "comparison" ? COMPARISON_COLUMNS : RESULT_COLUMNS;
  }
  visible() {
    const info = this.model.get("info");
    const query = this.ui.query.trim().toLowerCase();
    let rows = this.model.get("rows").filter((r) => {
      if (this.ui.changedOnly && info.mode === "comparison" && !r.changed) return false;
      if (this.ui.failuresOnly) {
        const score = info.mode === "comparison" ? r.score_after : r.score;
        if (!r.error && score !== null && score !== void 0 && score >= 1) return false;
      }
      if (!query) return true;
      const text = [r.input, r.target, r.output, r.output_before, r.output_after, r.message, r.error].filter(Boolean).join("\n").toLowerCase();
      return text.includes(query);
    });
    const column = this.columns().find((c) => c.key === this.ui.sort) || this.columns()[0];
    const sign = this.ui.descending ? -1 : 1;
    rows = rows.map((r, i) => [r, i]).sort(([a, i], [b, j]) => {
      const x = sortValue(column, a);
      const y = sortValue(column, b);
      if (x < y) return -sign;
      if (x > y) return sign;
      return i - j;
    }).map(([r]) => r);
    return rows;
  }
  summary(info) {
    if (info.mode === "comparison") {
      return [
        h("span", { class: "pl-title" }, info.title),
        h("span", { class: "pl-stat" }, `score ${num(info.score_before, 3)} \u2192 ${num(info.score_after, 3)}`),
        h("span", { class: "pl-delta", "data-tone": tone(info.delta) }, signed(info.delta)),
        h("span", { class: "pl-stat" }, `${info.examples} examples \xB7 ${info.improved} improved \xB7 ${info.regressed} regressed \xB7 ${info.changed} changed`)
      ];
    }
    return [
      h("span", { class: "pl-title" }, info.title),
      h("span", { class: "pl-stat", "data-role": "score" }, `score ${num(info.score, 3)}`),
      h("span", { class: "pl-stat" }, `${info.examples} examples \xB7 ${info.failures} not passed \xB7 ${info.errors} errors`),
      h("span", { class: "pl-stat" }, `${info.tokens.toLocaleString()} tokens \xB7 ${dollars(info.cost)}`),
      info.status !== "done" ? h("span", { class: "pl-badge" }, info.status) : null
    ];
  }
  controls(info) {
    const search = h("input", {
      type: "search",
      class: "pl-search",
      placeholder: "filter text\u2026",
      value: this.ui.query
    });
    search.addEventListener("input", () => {
      this.ui.query = search.value;
      this.renderBody();
    });
    const toggle = (label, key, role) => {
      const box = h("input", { type: "checkbox", checked: this.ui[key], "data-role": role });
      box.addEventListener("change", () => {
        this.ui[key] = box.checked;
        this.renderBody();
      });
      return h("label", { class: "pl-toggle" }, box, label);
    };
    return h(
      "div",
      { class: "pl-controls" },
      search,
      toggle("failures only", "failuresOnly", "failures-only"),
      info.mode === "comparison" ? toggle("changed only", "changedOnly", "changed-only") : null
    );
  }
  prompts(info) {
    if (info.mode !== "comparison") return null;
    if (!info.prompts.length) return h("div", { class: "pl-prompts pl-muted" }, "Same parameter values in both runs.");
    return h(
      "div",
      { class: "pl-prompts" },
      info.prompts.map((p) => h("div", { class: "pl-prompt" }, h("div", { class: "pl-prompt-name" }, `parameter ${p.name}`), diffView(p.diff)))
    );
  }
  open(row, side) {
    this.model.send({ type: "open", row: row.index, side });
  }
  header() {
    return h(
      "tr",
      {},
      this.columns().map((c) => {
        const active = this.ui.sort === c.key;
        return h(
          "th",
          {
            "data-key": c.key,
            "data-sorted": active ? this.ui.descending ? "desc" : "asc" : null,
            title: "sort",
            onclick: () => {
              this.ui.descending = active ? !this.ui.descending : false;
              this.ui.sort = c.key;
              this.renderBody();
            }
          },
          c.label,
          active ? this.ui.descending ? " \u25BE" : " \u25B4" : ""
        );
      })
    );
  }
  body() {
    const info = this.model.get("info");
    const opened = this.model.get("opened") || {};
    const rows = this.visible();
    const shown = rows.slice(0, MAX_ROWS);
    const lines = shown.map((r) => {
      const side = info.mode === "comparison" && !r.has_after ? "before" : "after";
      const cells = this.columns().map((c) => h("td", { class: c.wide ? "pl-wide" : null }, c.cell(r)));
      if (info.mode === "comparison") {
        const links = ["before", "after"].filter((s) => r[`has_${s}`]).map(
          (s) => h("button", { type: "button", class: "pl-link", "data-side": s, onclick: (e) => {
            e.stopPropagation();
            this.open(r, s);
          } }, s)
        );
        cells.push(h("td", { class: "pl-open" }, links));
      }
      return h(
        "tr",
        {
          class: "pl-row",
          "data-index": r.index,
          "data-selected": opened.row === r.index ? "true" : null,
          title: "open this example's graph",
          onclick: () => this.open(r, side)
        },
        cells
      );
    });
    const more = rows.length - shown.length;
    return { lines, count: rows.length, more };
  }
  renderBody() {
    const { lines, count, more } = this.body();
    const head = this.header();
    if (this.model.get("info").mode === "comparison") head.append(h("th", {}, "graph"));
    this.thead.replaceChildren(head);
    this.tbody.replaceChildren(...lines);
    const total = this.model.get("rows").length;
    this.footer.replaceChildren(
      `${count} of ${total} example${total === 1 ? "" : "s"} shown`,
      more > 0 ? ` (first ${MAX_ROWS}; filter to see the rest)` : ""
    );
  }
  render() {
    const info = this.model.get("info");
    if (!info.mode) {
      this.el.replaceChildren();
      return;
    }
    const opened = this.model.get("opened") || {};
    this.thead = h("thead");
    this.tbody = h("tbody");
    this.footer = h("div", { class: "pl-foot" });
    const root = h(
      "div",
      { class: "plait-eval", "data-mode": info.mode },
      h("div", { class: "pl-head" }, this.summary(info)),
      this.prompts(info),
      this.controls(info),
      h("div", { class: "pl-scroll" }, h("table", { class: "pl-table" }, this.thead, this.tbody)),
      this.footer,
      opened.error ? h("div", { class: "pl-error pl-message" }, opened.error) : null
    );
    this.el.replaceChildren(root);
    this.renderBody();
  }
};
var evaluation_default = {
  render({ model, el }) {
    const table = new EvalTable(model, el);
    return () => table.destroy();
  }
};
export {
  evaluation_default as default
};
