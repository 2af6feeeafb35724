// GraphView: the live graph explorer of plait_jupyter (an anywidget front-end).
//
// State comes from the Python model: graph_data (nodes, edges, control edges, groups; sent again
// as a graph recorded at run time grows, with the same serial), node_states
// (coalesced on the Python side), node_details (final), plus "details" custom
// messages carrying the details of nodes that changed during a run. "Edit & re-run": the
// whatif state says whether re-runs are available and describes the re-run shown; "edit"
// messages answer a request for a node's editable form.

import { clip, dollars, h, svg } from "./dom.js";
import { inspectorContent } from "./inspector.js";
import { edgePath, layoutGraph } from "./layout.js";
import { bannerContent, diffSection, EDITABLE_KINDS, editorContent } from "./whatif.js";

const STATES = [
  "pending",
  "queued",
  "running",
  "retrying",
  "done",
  "cached",
  "failed",
  "skipped",
  "cancelled",
  "unused",
];
const FINISHED = new Set(["done", "cached", "failed", "skipped", "cancelled", "unused"]);
const MIN_ZOOM = 0.02;
const MAX_ZOOM = 3;
const FAR_ZOOM = 0.45; // below this zoom, labels are hidden (they would be unreadable anyway)

/** The state shown for a collapsed group, from its members' states. */
function groupState(states) {
  const has = (s) => states.some((x) => x === s);
  if (has("failed")) return "failed";
  if (has("retrying")) return "retrying";
  if (has("running")) return "running";
  if (has("queued")) return "queued";
  if (states.every((s) => s === "cached")) return "cached";
  if (states.every((s) => s === "done" || s === "cached" || s === "unused")) return "done";
  if (has("cancelled")) return "cancelled";
  if (has("skipped")) return "skipped";
  return "pending";
}

// The last layout of each run shown (by graph_data.serial, unique per run): a view drawn again
// (JupyterLab re-renders a cell's output, or a second view of the widget) keeps the places of
// the nodes already drawn.
const LAYOUTS = new Map();
const KEPT_LAYOUTS = 50;

class Explorer {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.details = { ...model.get("node_details") };
    this.states = {};
    this.view = { x: 0, y: 0, k: 1 };
    this.editing = null; // the node whose editor is open
    this.forms = {}; // node id -> {form} or {error}, as Python answered "edit"
    this.drafts = {}; // node id -> the edits typed so far
    this.build();
    this.listeners = [
      ["change:graph_data", () => this.onGraphData()],
      ["change:group_by", () => this.rebuild(false)],
      ["change:collapsed", () => this.rebuild(false)],
      ["change:node_states", () => this.updateStates()],
      ["change:node_details", () => {
        this.details = { ...model.get("node_details") };
        this.renderInspector();
      }],
      ["change:selected", () => this.renderInspector()],
      ["change:run_info", () => this.renderStatus()],
      ["change:whatif", () => this.onWhatIf()],
      ["change:height", () => (this.root.style.height = `${model.get("height")}px`)],
      ["msg:custom", (msg) => this.onMessage(msg)],
    ];
    for (const [name, fn] of this.listeners) model.on(name, fn);
    this.onGraphData();
  }

  /** A new graph is laid out afresh; the same run's graph, grown, keeps its nodes in place. */
  onGraphData() {
    const data = this.model.get("graph_data") || {};
    const memo = data.serial ? LAYOUTS.get(data.serial) : undefined;
    if (!this.placed && memo && memo.key === this.layoutKey()) {
      Object.assign(this, { serial: memo.serial, placed: memo.placed, cols: memo.cols });
    }
    const grown = Boolean(data.serial) && data.serial === this.serial && Boolean(this.placed);
    this.serial = data.serial;
    this.rebuild(!grown, grown);
  }

  /** What a layout depends on besides the graph: the grouping and the collapsed groups. */
  layoutKey() {
    return `${this.model.get("group_by")}|${[...(this.model.get("collapsed") || [])].sort().join(",")}`;
  }

  destroy() {
    for (const [name, fn] of this.listeners) this.model.off(name, fn);
    this.resizer.disconnect();
  }

  onMessage(msg) {
    if (msg && msg.type === "details") {
      Object.assign(this.details, msg.details);
      if (this.model.get("selected") in msg.details) this.renderInspector();
    } else if (msg && msg.type === "edit") {
      this.forms[msg.node] = msg;
      if (this.editing === msg.node) this.renderInspector();
    }
  }

  whatif() {
    return this.model.get("whatif") || {};
  }

  onWhatIf() {
    const info = this.whatif();
    if (info.status === "done") {
      // A new result is shown: its forms differ, and the edit that made it is done.
      this.editing = null;
      this.forms = {};
      this.drafts = {};
    }
    this.applyMarks();
    this.renderBanner();
    this.renderInspector();
  }

  startEdit(id) {
    this.editing = id;
    delete this.forms[id];
    this.model.send({ type: "edit", node: id });
    this.renderInspector();
  }

  applyMarks() {
    const info = this.whatif();
    const changed = new Set(info.changed || []);
    const reused = new Set(info.reused || []);
    for (const [id, el] of this.nodeEls || []) {
      const edited = info.node === id && Boolean(info.changes);
      el.classList.toggle("pl-changed", changed.has(id));
      el.classList.toggle("pl-reused", reused.has(id));
      el.classList.toggle("pl-edited", edited);
      const mark = el.querySelector(".pl-mark");
      if (mark) mark.textContent = edited ? "✎ edited" : changed.has(id) ? "Δ changed" : "";
    }
  }

  renderBanner() {
    const nameOf = (id) => this.nodesById?.get(id)?.name || id;
    const parts = bannerContent(this.whatif(), nameOf, {
      onSelect: (id) => this.select(id),
      onAdopt: (id) => {
        this.model.send({ type: "adopt", node: id });
      },
    });
    this.banner.replaceChildren(...parts);
    this.banner.hidden = parts.length === 0;
  }

  editExtras(id, node, state) {
    const info = this.whatif();
    const extras = [];
    const finished = FINISHED.has(state) && state !== "unused";
    if (info.available && finished && EDITABLE_KINDS.has(node.kind)) {
      extras.push(
        h(
          "button",
          { class: "pl-btn pl-edit-rerun", onclick: () => this.startEdit(id), disabled: info.status === "running" },
          "Edit & re-run",
        ),
      );
    }
    const change = (info.changes || {})[id];
    if (change) extras.push(diffSection(change));
    return extras;
  }

  editorPanel(id, node) {
    const answer = this.forms[id];
    const cancel = () => {
      this.editing = null;
      this.renderInspector();
    };
    const head = h(
      "div",
      { class: "pl-insp-head" },
      h("span", { class: "pl-insp-title", title: id }, node.name),
      h("button", { class: "pl-close", title: "Close the editor", onclick: cancel }, "×"),
    );
    if (!answer) return [head, h("div", { class: "pl-note" }, "Loading the prompt…")];
    if (answer.error) return [head, h("pre", { class: "pl-pre pl-error" }, answer.error)];
    this.drafts[id] = this.drafts[id] || {};
    const editor = editorContent(answer.form, this.drafts[id], this.whatif(), {
      onRun: (edits) => this.model.send({ type: "rerun", node: id, ...edits }),
      onCancel: cancel,
    });
    return [head, editor];
  }

  build() {
    const model = this.model;
    this.title = h("span", { class: "pl-title" });
    this.groupSelect = h(
      "select",
      {
        class: "pl-group-select",
        title: "Group nodes by",
        onchange: () => {
          model.set("group_by", this.groupSelect.value);
          model.set("collapsed", []);
          model.save_changes();
        },
      },
      h("option", { value: "module" }, "group: module"),
      h("option", { value: "scope" }, "group: helper scope"),
      h("option", { value: "none" }, "no groups"),
    );
    const button = (label, title, fn) => h("button", { class: "pl-btn", title, onclick: fn }, label);
    this.status = h("span", { class: "pl-status" });
    const toolbar = h(
      "div",
      { class: "pl-toolbar" },
      this.title,
      this.status,
      h("span", { class: "pl-spacer" }),
      this.groupSelect,
      button("Collapse", "Collapse every top-level group", () => this.collapseAll()),
      button("Expand", "Expand every group", () => this.setCollapsed([])),
      button("−", "Zoom out", () => this.zoomBy(1 / 1.25, undefined, undefined, true)),
      button("+", "Zoom in", () => this.zoomBy(1.25, undefined, undefined, true)),
      button("Fit", "Fit the graph to the view", () => {
        this.userMoved = false;
        this.fit();
      }),
    );
    this.viewport = svg("g", { class: "pl-viewport" });
    this.canvas = svg(
      "svg",
      { class: "pl-canvas" },
      svg(
        "defs",
        {},
        svg(
          "marker",
          { id: this.markerId(), viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
          svg("path", { d: "M0,0L10,5L0,10z", class: "pl-arrow" }),
        ),
      ),
      this.viewport,
    );
    this.empty = h("div", { class: "pl-empty" }, "Waiting for a run…");
    this.stage = h("div", { class: "pl-stage" }, this.canvas, this.empty);
    this.panel = h("div", { class: "pl-inspector", hidden: true });
    this.banner = h("div", { class: "pl-whatif", hidden: true });
    this.legend = h("div", { class: "pl-legend" });
    this.note = h("span", { class: "pl-note" });
    this.root = h(
      "div",
      { class: "plait-graph" },
      toolbar,
      this.banner,
      h("div", { class: "pl-body" }, this.stage, this.panel),
      h("div", { class: "pl-footer" }, this.legend, this.note),
    );
    this.root.style.height = `${model.get("height")}px`;
    this.el.replaceChildren(this.root);
    this.bindPointer();
    // Until the user zooms or pans, keep the drawing fitted to the stage (which has no size
    // before the output area attaches it, and changes when the inspector opens).
    this.userMoved = false;
    this.resizer = new ResizeObserver(() => {
      if (!this.userMoved) this.fit();
    });
    this.resizer.observe(this.stage);
  }

  markerId() {
    if (!this._marker) this._marker = `pl-arrow-${Math.random().toString(36).slice(2)}`;
    return this._marker;
  }

  rebuild(refit, grown = false) {
    const t0 = performance.now();
    const data = this.model.get("graph_data") || {};
    const nodes = data.nodes || [];
    this.nodesById = new Map(nodes.map((n) => [n.id, n]));
    this.groupsById = new Map();
    for (const list of Object.values(data.groups || {})) for (const g of list) this.groupsById.set(g.id, g);
    this.title.textContent = data.title || "";
    const groupBy = this.model.get("group_by");
    this.groupSelect.value = groupBy;
    this.empty.hidden = nodes.length > 0;
    this.note.textContent = data.hidden ? `showing ${nodes.length} of ${nodes.length + data.hidden} nodes` : "";
    const collapsed = new Set(this.model.get("collapsed"));
    const rect = this.stage.getBoundingClientRect();
    const aspect = rect.width > 0 && rect.height > 0 ? rect.width / rect.height : 1.8;
    const previous = grown ? { nodes: this.placed, cols: this.cols } : null;
    const running = (this.model.get("run_info") || {}).status === "running";
    const laid = layoutGraph(data.nodes ? data : { nodes: [], edges: [], groups: {} }, groupBy, collapsed, aspect, previous, running);
    const t1 = performance.now();
    this.draw(laid, previous && previous.nodes);
    this.placed = new Map(laid.nodes.map((n) => [n.id, n]));
    this.cols = laid.cols;
    if (this.serial) {
      LAYOUTS.delete(this.serial); // re-inserted last: the map stays in least-recent order
      LAYOUTS.set(this.serial, { serial: this.serial, placed: this.placed, cols: this.cols, key: this.layoutKey() });
      if (LAYOUTS.size > KEPT_LAYOUTS) LAYOUTS.delete(LAYOUTS.keys().next().value);
    }
    if (!grown) this.root.dataset.freshLayouts = String(Number(this.root.dataset.freshLayouts || 0) + 1);
    this.states = {};
    this.updateStates();
    this.updateGroupNodes();
    const t2 = performance.now();
    this.root.dataset.layoutMs = (t1 - t0).toFixed(1);
    this.root.dataset.renderMs = (t2 - t0).toFixed(1);
    this.root.dataset.nodeCount = String(this.nodeEls.size);
    if (refit) this.userMoved = false;
    // While a graph grows, the view moves only when the drawing no longer fits in it.
    if (!this.userMoved && !(grown && this.fitsView())) this.fit();
    requestAnimationFrame(() => {
      this.root.dataset.paintMs = (performance.now() - t0).toFixed(1);
      this.root.dataset.rendered = String(Number(this.root.dataset.rendered || 0) + 1);
    });
    this.applyMarks();
    this.renderBanner();
    this.renderInspector();
    this.renderStatus();
  }

  draw(laid, previous = null) {
    const groupLayer = svg("g", { class: "pl-groups" });
    for (const g of laid.groups) {
      const info = this.groupsById.get(g.id);
      groupLayer.append(
        svg(
          "g",
          { class: `pl-group pl-depth-${Math.min(g.depth, 4)} pl-group-${info?.kind || "module"}`, "data-group": g.id },
          svg("rect", { x: g.x - g.w / 2, y: g.y - g.h / 2, width: g.w, height: g.h, rx: 8 }),
          svg(
            "text",
            { class: "pl-group-head", x: g.x - g.w / 2 + 8, y: g.y - g.h / 2 + 13 },
            (info?.kind === "iteration" ? "▾ ↻ " : "▾ ") + clip(info ? info.label : g.id, Math.max(4, Math.floor(g.w / 7))),
            svg("title", {}, `${info ? info.label : g.id} (click to collapse)`),
          ),
        ),
      );
    }
    const marker = `url(#${this.markerId()})`;
    const edgeLayer = svg("g", { class: "pl-edges" });
    for (const e of laid.edges) {
      const cls = [e.hub ? "pl-hub-edge" : "", e.control ? "pl-control-edge" : ""].join(" ").trim();
      edgeLayer.append(
        svg(
          "path",
          { d: edgePath(e.points), "marker-end": marker, class: cls || null, "data-from": e.from, "data-to": e.to },
          e.control ? svg("title", {}, `${this.nameOf(e.from)} → ${this.nameOf(e.to)}: control (called after its reply)`) : null,
        ),
      );
    }
    const nodeLayer = svg("g", { class: "pl-nodes" });
    this.nodeEls = new Map();
    this.groupNodeEls = new Map();
    for (const n of laid.nodes) {
      const el = n.group ? this.drawGroupNode(n) : this.drawNode(n);
      if (previous && !previous.has(n.id)) el.classList.add("pl-new");
      nodeLayer.append(el);
    }
    this.viewport.replaceChildren(groupLayer, edgeLayer, nodeLayer);
    this.bounds = laid.bounds;
    this.hasControl = laid.edges.some((e) => e.control);
  }

  drawNode(n) {
    const node = this.nodesById.get(n.id);
    const sub = node.target ? `${node.kind} · ${node.target}` : node.kind;
    const cls = `pl-node pl-kind-${node.kind}${node.output ? " pl-out" : ""}`;
    const el = svg(
      "g",
      { class: cls, "data-id": n.id, transform: `translate(${n.x - n.w / 2},${n.y - n.h / 2})` },
      svg("rect", { width: n.w, height: n.h, rx: node.kind === "input" ? n.h / 2 : 6 }),
      svg("text", { class: "pl-name", x: 10, y: 17 }, clip(node.name, 22)),
      svg("text", { class: "pl-sub", x: 10, y: 31 }, clip(sub, 26)),
      svg("text", { class: "pl-mark", x: n.w - 6, y: -4, "text-anchor": "end" }),
      svg("title", {}, [node.id, node.module_path, (node.scope || []).join(" / ")].filter(Boolean).join("\n")),
    );
    this.nodeEls.set(n.id, el);
    return el;
  }

  drawGroupNode(n) {
    const info = this.groupsById.get(n.group);
    const label = info ? info.label : n.group;
    const sub = svg("text", { class: "pl-sub", x: 10, y: 33 });
    const el = svg(
      "g",
      { class: "pl-node pl-collapsed", "data-group": n.group, transform: `translate(${n.x - n.w / 2},${n.y - n.h / 2})` },
      svg("rect", { width: n.w, height: n.h, rx: 10 }),
      svg("text", { class: "pl-name", x: 10, y: 18 }, "▸ " + clip(label, 22)),
      sub,
      svg("title", {}, `${label} (click to expand)`),
    );
    this.groupNodeEls.set(n.group, { el, sub });
    return el;
  }

  updateStates() {
    const states = this.model.get("node_states") || {};
    const changed = new Set();
    let hiddenChanged = false;
    for (const [id, state] of Object.entries(states)) {
      if (this.states[id] === state) continue;
      this.states[id] = state;
      changed.add(id);
      const el = this.nodeEls.get(id);
      if (el) el.dataset.state = state;
      else hiddenChanged = true;
    }
    if (hiddenChanged && this.groupNodeEls.size) this.updateGroupNodes();
    this.renderLegend();
    this.renderStatus();
    if (changed.has(this.model.get("selected"))) this.renderInspector();
  }

  updateGroupNodes() {
    const members = new Map();
    for (const node of this.nodesById.values()) {
      if (this.nodeEls.has(node.id)) continue;
      const gid = this.collapsedOwner(node);
      if (!gid) continue;
      if (!members.has(gid)) members.set(gid, []);
      members.get(gid).push(this.states[node.id] || "pending");
    }
    for (const [gid, { el, sub }] of this.groupNodeEls) {
      const list = members.get(gid) || [];
      el.dataset.state = groupState(list);
      const done = list.filter((s) => FINISHED.has(s)).length;
      sub.textContent = `${list.length} nodes · ${done} finished`;
    }
  }

  collapsedOwner(node) {
    const groupBy = this.model.get("group_by");
    let found = null;
    for (let g = node.groups ? node.groups[groupBy] : null; g; g = this.groupsById.get(g)?.parent) {
      if (this.groupNodeEls.has(g)) found = g;
    }
    return found;
  }

  renderLegend() {
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const id of this.nodesById.keys()) counts[this.states[id] || "pending"] += 1;
    this.counts = counts;
    this.legend.replaceChildren(
      ...STATES.filter((s) => counts[s] > 0 || !["skipped", "unused", "cached"].includes(s)).map((s) =>
        h("span", { class: "pl-legend-item", "data-state": s }, h("span", { class: `pl-swatch pl-state-${s}` }), `${s} ${counts[s]}`),
      ),
      // replaceChildren would draw a null as the text "null": leave the item out instead.
      ...(this.hasControl
        ? [h("span", { class: "pl-legend-item pl-legend-control", title: "dashed: called after that reply was awaited (control), not fed its output" }, h("span", { class: "pl-swatch-control" }), "control edge")]
        : []),
    );
  }

  renderStatus() {
    const info = this.model.get("run_info") || {};
    const total = this.nodesById ? this.nodesById.size : 0;
    const c = this.counts || {};
    const finished = (c.done || 0) + (c.cached || 0);
    const parts = [info.status || "not run"];
    if (total) parts.push(`${finished}/${total} done`);
    if (c.failed) parts.push(`${c.failed} failed`);
    if (info.tokens) parts.push(`${info.tokens.toLocaleString()} tokens`);
    if (info.cost) parts.push(dollars(info.cost));
    if (info.elapsed) parts.push(`${info.elapsed.toFixed(2)} s`);
    this.status.textContent = parts.join(" · ");
    this.status.dataset.status = info.status || "";
  }

  renderInspector() {
    const id = this.model.get("selected");
    for (const el of this.viewport.querySelectorAll(".pl-selected")) el.classList.remove("pl-selected");
    const node = id ? this.nodesById.get(id) : null;
    if (!node) {
      this.panel.hidden = true;
      this.panel.replaceChildren();
      return;
    }
    this.nodeEls.get(id)?.classList.add("pl-selected");
    const state = this.states[id] || "pending";
    const editing = this.editing === id;
    const extras = editing ? [] : this.editExtras(id, node, state);
    this.panel.replaceChildren(
      ...(editing
        ? this.editorPanel(id, node)
        : inspectorContent(node, state, this.details[id] || {}, () => this.select(""), extras, (n) => this.nameOf(n))),
    );
    this.panel.classList.toggle("pl-wide", editing || Boolean((this.whatif().changes || {})[id]));
    this.panel.hidden = false;
    const shown = `${id}${editing ? " editing" : ""}`;
    if (this.shown !== shown) this.panel.scrollTop = 0; // another node (or the editor): start at its top
    this.shown = shown;
  }

  select(id) {
    if (this.editing && this.editing !== id) this.editing = null;
    this.model.set("selected", id);
    this.model.save_changes();
    this.renderInspector();
  }

  setCollapsed(list) {
    this.model.set("collapsed", list);
    this.model.save_changes();
  }

  collapseAll() {
    const groupBy = this.model.get("group_by");
    const data = this.model.get("graph_data") || {};
    const top = ((data.groups || {})[groupBy] || []).filter((g) => !g.parent).map((g) => g.id);
    this.setCollapsed(top);
  }

  toggleGroup(gid) {
    const collapsed = new Set(this.model.get("collapsed"));
    if (collapsed.has(gid)) collapsed.delete(gid);
    else collapsed.add(gid);
    this.setCollapsed([...collapsed]);
  }

  apply() {
    const { x, y, k } = this.view;
    this.viewport.setAttribute("transform", `translate(${x},${y}) scale(${k})`);
    this.canvas.classList.toggle("pl-far", k < FAR_ZOOM);
  }

  fit() {
    const rect = this.stage.getBoundingClientRect();
    const b = this.bounds;
    if (!b || !rect.width || !rect.height || b.x1 <= b.x0) return;
    const margin = 14; // screen pixels around the drawing
    const [w, h] = [b.x1 - b.x0, b.y1 - b.y0];
    const fitted = Math.min((rect.width - 2 * margin) / w, (rect.height - 2 * margin) / h, 1.2);
    const k = Math.min(Math.max(fitted, MIN_ZOOM), MAX_ZOOM);
    this.view = { k, x: (rect.width - w * k) / 2 - b.x0 * k, y: (rect.height - h * k) / 2 - b.y0 * k };
    this.apply();
  }

  /** Whether the whole drawing is inside the stage at the current zoom and pan. */
  fitsView() {
    const rect = this.stage.getBoundingClientRect();
    const b = this.bounds;
    if (!b || !rect.width) return false;
    const { x, y, k } = this.view;
    const m = 4;
    return b.x0 * k + x >= m && b.y0 * k + y >= m && b.x1 * k + x <= rect.width - m && b.y1 * k + y <= rect.height - m;
  }

  nameOf(id) {
    return this.nodesById?.get(id)?.name || id;
  }

  zoomBy(factor, cx, cy, byUser = false) {
    if (byUser) this.userMoved = true;
    const rect = this.stage.getBoundingClientRect();
    const px = cx ?? rect.width / 2;
    const py = cy ?? rect.height / 2;
    const { x, y, k } = this.view;
    const k2 = Math.min(Math.max(k * factor, MIN_ZOOM), MAX_ZOOM);
    this.view = { k: k2, x: px - ((px - x) * k2) / k, y: py - ((py - y) * k2) / k };
    this.apply();
  }

  bindPointer() {
    let drag = null;
    this.canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.userMoved = true;
      const rect = this.stage.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015)), e.clientX - rect.left, e.clientY - rect.top);
    }, { passive: false });
    this.canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, moved: false };
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      if (!drag.moved) this.canvas.setPointerCapture(e.pointerId);
      drag.moved = true;
      this.userMoved = true;
      this.view = { ...this.view, x: drag.vx + dx, y: drag.vy + dy };
      this.apply();
    });
    this.canvas.addEventListener("pointerup", (e) => {
      const wasDrag = drag && drag.moved;
      drag = null;
      if (wasDrag) return;
      const target = /** @type {Element} */ (e.target);
      const node = target.closest(".pl-node");
      if (node && node.dataset.id) return this.select(node.dataset.id);
      const group = target.closest("[data-group]");
      if (group && (node || target.closest(".pl-group-head"))) return this.toggleGroup(group.dataset.group);
    });
  }
}

export default {
  render({ model, el }) {
    const explorer = new Explorer(model, el);
    return () => explorer.destroy();
  },
};
