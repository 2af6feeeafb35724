// BatchProgressView: a progress bar for batch runs (done / failed / retrying, tokens, cost, ETA).

import { dollars, h } from "./dom.js";

function duration(value) {
  if (value === null || value === undefined) return "–";
  if (value < 10) return `${value.toFixed(1)} s`;
  if (value < 60) return `${value.toFixed(0)} s`;
  return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

export default {
  render({ model, el }) {
    const done = h("div", { class: "pl-bar-done" });
    const failed = h("div", { class: "pl-bar-failed" });
    const text = h("div", { class: "pl-progress-text" });
    const root = h("div", { class: "plait-progress" }, h("div", { class: "pl-bar" }, done, failed), text);
    const update = () => {
      const p = model.get("progress") || {};
      const total = p.total || 0;
      const pct = (n) => (total ? (100 * n) / total : 0);
      done.style.width = `${pct(p.done || 0)}%`;
      failed.style.left = `${pct(p.done || 0)}%`;
      failed.style.width = `${pct(p.failed || 0)}%`;
      const parts = [`${(p.done || 0) + (p.failed || 0)}/${total} items`];
      if (p.failed) parts.push(`${p.failed} failed`);
      if (p.retrying) parts.push(`${p.retrying} retrying`);
      parts.push(`${(p.tokens || 0).toLocaleString()} tokens`, dollars(p.cost), `${duration(p.elapsed)} elapsed`);
      if (p.eta !== null && p.eta !== undefined && (p.done || 0) + (p.failed || 0) < total) parts.push(`ETA ${duration(p.eta)}`);
      text.textContent = parts.join(" · ");
      root.dataset.finished = String(total > 0 && (p.done || 0) + (p.failed || 0) >= total);
    };
    model.on("change:progress", update);
    update();
    el.replaceChildren(root);
    return () => model.off("change:progress", update);
  },
};
