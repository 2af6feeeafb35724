// "Edit & re-run": the editor of one node's prompt, the side-by-side diff of a changed node,
// and the banner that describes the re-run shown. All text goes into text nodes (dom.h).

import { h } from "./dom.js";
import { pre, section } from "./inspector.js";

/**
 * @typedef {{kind: string, system_prompt: string|null, temperature: number|null,
 *   parameter: string|null, input: string|null, input_kind: string, input_label: string}} EditForm
 * @typedef {[string, string][]} Runs  ["=" | "-" | "+", text] pieces of one text
 * @typedef {{available?: boolean, status?: string, node?: string, edited?: string[],
 *   changed?: string[], changes?: Record<string, {before: Runs, after: Runs}>,
 *   rerun?: string[], reused?: string[], adopt?: {parameter: string, done: boolean}|null,
 *   message?: string}} WhatIf
 * @typedef {{system_prompt?: string, input?: string, temperature?: string}} Draft
 */

export const EDITABLE_KINDS = new Set(["llm", "op", "module", "input"]);

function label(text, ...extra) {
  return h("div", { class: "pl-role" }, text, ...extra);
}

/**
 * The editor for one node: system prompt and temperature (LLM nodes) and the input.
 * @param {EditForm} form
 * @param {Draft} draft  edits so far (kept across re-renders); updated in place
 * @param {WhatIf} info
 * @param {{onRun: (edits: Record<string, unknown>) => void, onCancel: () => void}} on
 */
export function editorContent(form, draft, info, on) {
  const running = info.status === "running";
  const area = (field, text, cls) => {
    const el = h("textarea", { class: `pl-edit ${cls}`, rows: 5, spellcheck: "false" });
    el.value = draft[field] ?? text;
    el.addEventListener("input", () => (draft[field] = el.value));
    return el;
  };
  const parts = [];
  if (form.system_prompt !== null) {
    const source = form.parameter ? `reads parameter ${form.parameter}` : "fixed text";
    parts.push(label("System prompt ", h("span", { class: "pl-muted" }, `(${source})`)));
    parts.push(area("system_prompt", form.system_prompt, "pl-edit-system"));
  }
  let temperature = null;
  if (form.kind === "llm") {
    temperature = h("input", {
      class: "pl-edit pl-edit-temperature",
      type: "number",
      min: 0,
      max: 2,
      step: 0.1,
      placeholder: "default",
    });
    temperature.value = draft.temperature ?? (form.temperature ?? "");
    temperature.addEventListener("input", () => (draft.temperature = temperature.value));
    parts.push(label("Temperature"), temperature);
  }
  if (form.input !== null) {
    parts.push(label(form.input_label, form.input_kind === "json" ? " — JSON" : ""));
    parts.push(area("input", form.input, "pl-edit-input"));
  } else {
    parts.push(h("div", { class: "pl-note" }, "This node's input is not text or JSON, so it cannot be edited here."));
  }
  const run = () => {
    const edits = {};
    if (form.system_prompt !== null) edits.system_prompt = draft.system_prompt ?? form.system_prompt;
    if (form.input !== null) edits.input = draft.input ?? form.input;
    if (temperature && temperature.value !== "") edits.temperature = Number(temperature.value);
    on.onRun(edits);
  };
  return h(
    "div",
    { class: "pl-editor" },
    h("div", { class: "pl-editor-head" }, "Edit & re-run"),
    ...parts,
    h(
      "div",
      { class: "pl-note" },
      "Runs this node and everything downstream again; every other node's output is reused. " +
        "The edit applies to this re-run only until you adopt it.",
    ),
    h(
      "div",
      { class: "pl-actions" },
      h("button", { class: "pl-btn pl-primary pl-run-edit", onclick: run, disabled: running }, running ? "Re-running…" : "Re-run"),
      h("button", { class: "pl-btn pl-cancel-edit", onclick: on.onCancel, disabled: running }, "Cancel"),
    ),
    info.status === "error" && info.message ? pre(info.message, "pl-error pl-edit-error") : null,
  );
}

/** @param {Runs} runs */
function marked(runs) {
  return runs.map(([op, text]) =>
    op === "-" ? h("del", { class: "pl-del" }, text) : op === "+" ? h("ins", { class: "pl-ins" }, text) : text,
  );
}

/**
 * Side by side: the node's output in the parent run and in this re-run.
 * @param {{before: Runs, after: Runs}} change
 */
export function diffSection(change) {
  return section(
    "Changed by the re-run",
    true,
    h(
      "div",
      { class: "pl-diff" },
      h("div", { class: "pl-diff-col" }, label("before"), pre(marked(change.before), "pl-diff-before")),
      h("div", { class: "pl-diff-col" }, label("after"), pre(marked(change.after), "pl-diff-after")),
    ),
  );
}

/**
 * The line under the toolbar describing the re-run shown (empty when none).
 * @param {WhatIf} info
 * @param {(id: string) => string} nameOf
 * @param {{onSelect: (id: string) => void, onAdopt: (id: string) => void}} on
 */
export function bannerContent(info, nameOf, on) {
  if (!info.node || !info.changes) return [];
  const changed = info.changed || [];
  const edited = info.edited && info.edited.length ? ` (${info.edited.join(", ")} edited)` : " (no edits)";
  const chip = (id) => h("button", { class: "pl-chip", title: id, onclick: () => on.onSelect(id) }, nameOf(id));
  const parts = [
    h("span", { class: "pl-whatif-title" }, "Re-run at ", chip(info.node), edited),
    h("span", {}, changed.length ? `${changed.length} changed:` : "no output changed"),
    ...changed.map(chip),
    h("span", { class: "pl-muted" }, `· ${(info.rerun || []).length} ran again, ${(info.reused || []).length} reused`),
  ];
  const adopt = info.adopt;
  if (adopt) {
    parts.push(
      h(
        "button",
        { class: "pl-btn pl-primary pl-adopt", disabled: adopt.done, onclick: () => on.onAdopt(info.node) },
        adopt.done ? `Adopted into ${adopt.parameter}` : `Adopt into ${adopt.parameter}`,
      ),
    );
  }
  if (info.status === "error" && info.message) parts.push(h("span", { class: "pl-whatif-error" }, info.message));
  else if (info.message) parts.push(h("span", { class: "pl-muted pl-whatif-message" }, info.message));
  return parts;
}
