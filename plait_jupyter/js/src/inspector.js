// The node inspector: what one node received, sent, returned, and cost.
// All text goes through dom.h, i.e. into text nodes (never innerHTML).

import { dollars, h, seconds } from "./dom.js";

/**
 * @typedef {{label: string, kind: string, text: string}} ShownValue
 * @typedef {{status?: string, endpoint?: string|null, attempts?: number,
 *   queued_at?: number|null, started_at?: number|null, finished_at?: number|null,
 *   duration?: number|null, ttft?: number|null, input_tokens?: number, output_tokens?: number,
 *   cost?: number, cached?: boolean, restored?: boolean, inputs?: ShownValue[],
 *   request?: {model: string, settings: string, messages: {role: string, content: string}[]}|null,
 *   output?: {kind: string, text: string, meta: string}|null,
 *   error?: {type: string, message: string, causes: {type: string, message: string}[], note: string}|null,
 *   stream?: string|null, retries?: {attempt: number, error: string, delay: number}[]}} Details
 */

function row(label, value) {
  return h("tr", {}, h("th", {}, label), h("td", {}, value));
}

export function section(title, open, ...body) {
  return h("details", { class: "pl-section", open }, h("summary", {}, title), ...body);
}

export function pre(text, cls = "") {
  return h("pre", { class: `pl-pre ${cls}` }, text);
}

const AFTER_SHOWN = 6;

/** "classify, verify (control)": the calls whose awaited replies came before this call. */
function afterText(after, nameOf) {
  const names = after.slice(-AFTER_SHOWN).map(nameOf);
  const earlier = after.length - names.length;
  return `${earlier ? `${earlier} earlier, ` : ""}${names.join(", ")} (control)`;
}

/**
 * Build the inspector's content for one node.
 * @param {import("./layout.js").NodeData} node
 * @param {string} state
 * @param {Details} d
 * @param {() => void} onClose
 * @param {unknown[]} [extra]  shown right after the facts (the re-run's actions and diff)
 * @param {(id: string) => string} [nameOf]  the name shown for a node key
 */
export function inspectorContent(node, state, d, onClose, extra = [], nameOf = (id) => id) {
  const where = [node.module_path, (node.scope || []).join(" / ")].filter(Boolean).join(" · ");
  const header = h(
    "div",
    { class: "pl-insp-head" },
    h("span", { class: `pl-badge pl-state-${state}` }, state),
    h("span", { class: "pl-insp-title", title: node.id }, node.name),
    h("button", { class: "pl-close", title: "Close", onclick: onClose }, "×"),
  );
  const facts = h(
    "table",
    { class: "pl-facts" },
    row("node", node.id),
    row("kind", node.target ? `${node.kind} · ${node.target}` : node.kind),
    where ? row("where", where) : null,
    node.item !== null && node.item !== undefined ? row("batch item", String(node.item)) : null,
    node.call_key ? row("call", node.call_key) : null,
    node.after && node.after.length ? row("after", afterText(node.after, nameOf)) : null,
    d.endpoint ? row("endpoint", d.endpoint) : null,
    d.attempts ? row("attempts", String(d.attempts)) : null,
    d.started_at !== undefined && d.started_at !== null
      ? row("time", `${seconds(d.started_at)} → ${seconds(d.finished_at)} (took ${seconds(d.duration)})`)
      : null,
    d.queued_at !== undefined && d.queued_at !== null && d.started_at !== null && d.started_at !== undefined
      ? row("queued", seconds(Math.max(0, d.started_at - d.queued_at)))
      : null,
    d.ttft ? row("first token", seconds(d.ttft)) : null,
    d.input_tokens || d.output_tokens
      ? row("tokens", `${d.input_tokens} in · ${d.output_tokens} out`)
      : null,
    d.cost ? row("cost", dollars(d.cost)) : null,
    d.cached ? row("cache", "served from the cache") : null,
    d.restored ? row("checkpoint", "restored from the checkpoint") : null,
  );
  const parts = [header, facts, ...extra];
  if (d.error) {
    parts.push(
      section(
        "Error",
        true,
        pre(`${d.error.type}: ${d.error.message}`, "pl-error"),
        d.error.note ? h("div", { class: "pl-note" }, d.error.note) : null,
        ...(d.error.causes || []).map((c) => pre(`caused by ${c.type}: ${c.message}`, "pl-error")),
      ),
    );
  }
  if (d.retries && d.retries.length) {
    parts.push(
      section(
        `Retries (${d.retries.length})`,
        false,
        ...d.retries.map((r) => pre(`attempt ${r.attempt}: ${r.error} — retried after ${seconds(r.delay)}`)),
      ),
    );
  }
  if (d.output) {
    parts.push(
      section(
        `Output (${d.output.kind})`,
        true,
        pre(d.output.text, "pl-output-text"),
        d.output.meta ? section("meta", false, pre(d.output.meta)) : null,
      ),
    );
  } else if (d.stream) {
    parts.push(section("Reply so far", true, pre(d.stream, "pl-output-text pl-streaming")));
  }
  if (d.request) {
    parts.push(
      section(
        "Prompt sent",
        !d.output,
        h("div", { class: "pl-note" }, [d.request.model, d.request.settings].filter(Boolean).join(" · ")),
        ...d.request.messages.map((m) =>
          h("div", { class: "pl-message" }, h("div", { class: "pl-role" }, m.role), pre(m.content)),
        ),
      ),
    );
  }
  if (d.inputs && d.inputs.length) {
    parts.push(
      section(
        "Inputs",
        false,
        ...d.inputs.map((v) => h("div", { class: "pl-message" }, h("div", { class: "pl-role" }, `${v.label} (${v.kind})`), pre(v.text))),
      ),
    );
  }
  if (!d.status && !d.output && !d.error) {
    parts.push(h("div", { class: "pl-note" }, "Not run yet."));
  }
  return parts;
}
