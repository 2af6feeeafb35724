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

// src/progress.js
function duration(value) {
  if (value === null || value === void 0) return "\u2013";
  if (value < 10) return `${value.toFixed(1)} s`;
  if (value < 60) return `${value.toFixed(0)} s`;
  return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}
var progress_default = {
  render({ model, el }) {
    const done = h("div", { class: "pl-bar-done" });
    const failed = h("div", { class: "pl-bar-failed" });
    const text = h("div", { class: "pl-progress-text" });
    const root = h("div", { class: "plait-progress" }, h("div", { class: "pl-bar" }, done, failed), text);
    const update = () => {
      const p = model.get("progress") || {};
      const total = p.total || 0;
      const pct = (n) => total ? 100 * n / total : 0;
      done.style.width = `${pct(p.done || 0)}%`;
      failed.style.left = `${pct(p.done || 0)}%`;
      failed.style.width = `${pct(p.failed || 0)}%`;
      const parts = [`${(p.done || 0) + (p.failed || 0)}/${total} items`];
      if (p.failed) parts.push(`${p.failed} failed`);
      if (p.retrying) parts.push(`${p.retrying} retrying`);
      parts.push(`${(p.tokens || 0).toLocaleString()} tokens`, dollars(p.cost), `${duration(p.elapsed)} elapsed`);
      if (p.eta !== null && p.eta !== void 0 && (p.done || 0) + (p.failed || 0) < total) parts.push(`ETA ${duration(p.eta)}`);
      text.textContent = parts.join(" \xB7 ");
      root.dataset.finished = String(total > 0 && (p.done || 0) + (p.failed || 0) >= total);
    };
    model.on("change:progress", update);
    update();
    el.replaceChildren(root);
    return () => model.off("change:progress", update);
  }
};
export {
  progress_default as default
};
