// Built by plait_jupyter/js/build.mjs from plait_jupyter/js/src; do not edit.
// Bundles @dagrejs/dagre, @dagrejs/graphlib (MIT): see THIRD_PARTY_LICENSES.txt.

// src/dom.js
var SVG_NS = "http://www.w3.org/2000/svg";
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
function svg(tag, attrs = {}, ...children) {
  const el = (
    /** @type {SVGElement} */
    document.createElementNS(SVG_NS, tag)
  );
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

// src/inspector.js
function row(label2, value) {
  return h("tr", {}, h("th", {}, label2), h("td", {}, value));
}
function section(title, open, ...body) {
  return h("details", { class: "pl-section", open }, h("summary", {}, title), ...body);
}
function pre(text, cls = "") {
  return h("pre", { class: `pl-pre ${cls}` }, text);
}
var AFTER_SHOWN = 6;
function afterText(after, nameOf) {
  const names = after.slice(-AFTER_SHOWN).map(nameOf);
  const earlier = after.length - names.length;
  return `${earlier ? `${earlier} earlier, ` : ""}${names.join(", ")} (control)`;
}
function inspectorContent(node, state, d, onClose, extra = [], nameOf = (id) => id) {
  const where = [node.module_path, (node.scope || []).join(" / ")].filter(Boolean).join(" \xB7 ");
  const header = h(
    "div",
    { class: "pl-insp-head" },
    h("span", { class: `pl-badge pl-state-${state}` }, state),
    h("span", { class: "pl-insp-title", title: node.id }, node.name),
    h("button", { class: "pl-close", title: "Close", onclick: onClose }, "\xD7")
  );
  const facts = h(
    "table",
    { class: "pl-facts" },
    row("node", node.id),
    row("kind", node.target ? `${node.kind} \xB7 ${node.target}` : node.kind),
    where ? row("where", where) : null,
    node.item !== null && node.item !== void 0 ? row("batch item", String(node.item)) : null,
    node.call_key ? row("call", node.call_key) : null,
    node.after && node.after.length ? row("after", afterText(node.after, nameOf)) : null,
    d.endpoint ? row("endpoint", d.endpoint) : null,
    d.attempts ? row("attempts", String(d.attempts)) : null,
    d.started_at !== void 0 && d.started_at !== null ? row("time", `${seconds(d.started_at)} \u2192 ${seconds(d.finished_at)} (took ${seconds(d.duration)})`) : null,
    d.queued_at !== void 0 && d.queued_at !== null && d.started_at !== null && d.started_at !== void 0 ? row("queued", seconds(Math.max(0, d.started_at - d.queued_at))) : null,
    d.ttft ? row("first token", seconds(d.ttft)) : null,
    d.input_tokens || d.output_tokens ? row("tokens", `${d.input_tokens} in \xB7 ${d.output_tokens} out`) : null,
    d.cost ? row("cost", dollars(d.cost)) : null,
    d.cached ? row("cache", "served from the cache") : null,
    d.restored ? row("checkpoint", "restored from the checkpoint") : null
  );
  const parts = [header, facts, ...extra];
  if (d.error) {
    parts.push(
      section(
        "Error",
        true,
        pre(`${d.error.type}: ${d.error.message}`, "pl-error"),
        d.error.note ? h("div", { class: "pl-note" }, d.error.note) : null,
        ...(d.error.causes || []).map((c) => pre(`caused by ${c.type}: ${c.message}`, "pl-error"))
      )
    );
  }
  if (d.retries && d.retries.length) {
    parts.push(
      section(
        `Retries (${d.retries.length})`,
        false,
        ...d.retries.map((r) => pre(`attempt ${r.attempt}: ${r.error} \u2014 retried after ${seconds(r.delay)}`))
      )
    );
  }
  if (d.output) {
    parts.push(
      section(
        `Output (${d.output.kind})`,
        true,
        pre(d.output.text, "pl-output-text"),
        d.output.meta ? section("meta", false, pre(d.output.meta)) : null
      )
    );
  } else if (d.stream) {
    parts.push(section("Reply so far", true, pre(d.stream, "pl-output-text pl-streaming")));
  }
  if (d.request) {
    parts.push(
      section(
        "Prompt sent",
        !d.output,
        h("div", { class: "pl-note" }, [d.request.model, d.request.settings].filter(Boolean).join(" \xB7 ")),
        ...d.request.messages.map(
          (m) => h("div", { class: "pl-message" }, h("div", { class: "pl-role" }, m.role), pre(m.content))
        )
      )
    );
  }
  if (d.inputs && d.inputs.length) {
    parts.push(
      section(
        "Inputs",
        false,
        ...d.inputs.map((v) => h("div", { class: "pl-message" }, h("div", { class: "pl-role" }, `${v.label} (${v.kind})`), pre(v.text)))
      )
    );
  }
  if (!d.status && !d.output && !d.error) {
    parts.push(h("div", { class: "pl-note" }, "Not run yet."));
  }
  return parts;
}

// node_modules/@dagrejs/dagre/dist/dagre.esm.js
var Te = Object.defineProperty;
var Sn = (e, n, t) => n in e ? Te(e, n, { enumerable: true, configurable: true, writable: true, value: t }) : e[n] = t;
var Mn = (e, n) => {
  for (var t in n) Te(e, t, { get: n[t], enumerable: true });
};
var je = (e, n, t) => Sn(e, typeof n != "symbol" ? n + "" : n, t);
var ie = {};
Mn(ie, { Graph: () => T, alg: () => H });
var Pn = Object.defineProperty;
var Se = (e, n) => {
  for (var t in n) Pn(e, t, { get: n[t], enumerable: true });
};
var Q = class {
  constructor(e) {
    this._isDirected = true, this._isMultigraph = false, this._isCompound = false, this._nodes = {}, this._in = {}, this._preds = {}, this._out = {}, this._sucs = {}, this._edgeObjs = {}, this._edgeLabels = {}, this._nodeCount = 0, this._edgeCount = 0, this._defaultNodeLabelFn = () => {
    }, this._defaultEdgeLabelFn = () => {
    }, e && (this._isDirected = "directed" in e ? e.directed : true, this._isMultigraph = "multigraph" in e ? e.multigraph : false, this._isCompound = "compound" in e ? e.compound : false), this._isCompound && (this._parent = {}, this._children = {}, this._children["\0"] = {});
  }
  isDirected() {
    return this._isDirected;
  }
  isMultigraph() {
    return this._isMultigraph;
  }
  isCompound() {
    return this._isCompound;
  }
  setGraph(e) {
    return this._label = e, this;
  }
  graph() {
    return this._label;
  }
  setDefaultNodeLabel(e) {
    return typeof e != "function" ? this._defaultNodeLabelFn = () => e : this._defaultNodeLabelFn = e, this;
  }
  nodeCount() {
    return this._nodeCount;
  }
  nodes() {
    return Object.keys(this._nodes);
  }
  sources() {
    return this.nodes().filter((e) => Object.keys(this._in[e]).length === 0);
  }
  sinks() {
    return this.nodes().filter((e) => Object.keys(this._out[e]).length === 0);
  }
  setNodes(e, n) {
    return e.forEach((t) => {
      n !== void 0 ? this.setNode(t, n) : this.setNode(t);
    }), this;
  }
  setNode(e, n) {
    return e in this._nodes ? (arguments.length > 1 && (this._nodes[e] = n), this) : (this._nodes[e] = arguments.length > 1 ? n : this._defaultNodeLabelFn(e), this._isCompound && (this._parent[e] = "\0", this._children[e] = {}, this._children["\0"][e] = true), this._in[e] = {}, this._preds[e] = {}, this._out[e] = {}, this._sucs[e] = {}, ++this._nodeCount, this);
  }
  node(e) {
    return this._nodes[e];
  }
  hasNode(e) {
    return e in this._nodes;
  }
  removeNode(e) {
    if (e in this._nodes) {
      let n = (t) => this.removeEdge(this._edgeObjs[t]);
      delete this._nodes[e], this._isCompound && (this._removeFromParentsChildList(e), delete this._parent[e], this.children(e).forEach((t) => {
        this.setParent(t);
      }), delete this._children[e]), Object.keys(this._in[e]).forEach(n), delete this._in[e], delete this._preds[e], Object.keys(this._out[e]).forEach(n), delete this._out[e], delete this._sucs[e], --this._nodeCount;
    }
    return this;
  }
  setParent(e, n) {
    if (!this._isCompound) throw new Error("Cannot set parent in a non-compound graph");
    if (n === void 0) n = "\0";
    else {
      n += "";
      for (let t = n; t !== void 0; t = this.parent(t)) if (t === e) throw new Error("Setting " + n + " as parent of " + e + " would create a cycle");
      this.setNode(n);
    }
    return this.setNode(e), this._removeFromParentsChildList(e), this._parent[e] = n, this._children[n][e] = true, this;
  }
  parent(e) {
    if (this._isCompound) {
      let n = this._parent[e];
      if (n !== "\0") return n;
    }
  }
  children(e = "\0") {
    if (this._isCompound) {
      let n = this._children[e];
      if (n) return Object.keys(n);
    } else {
      if (e === "\0") return this.nodes();
      if (this.hasNode(e)) return [];
    }
    return [];
  }
  predecessors(e) {
    let n = this._preds[e];
    if (n) return Object.keys(n);
  }
  successors(e) {
    let n = this._sucs[e];
    if (n) return Object.keys(n);
  }
  neighbors(e) {
    let n = this.predecessors(e);
    if (n) {
      let t = new Set(n), r = this.successors(e);
      if (r) for (let o of r) t.add(o);
      return Array.from(t.values());
    }
  }
  isLeaf(e) {
    var n;
    let t;
    return this.isDirected() ? t = this.successors(e) : t = this.neighbors(e), ((n = t == null ? void 0 : t.length) != null ? n : 0) === 0;
  }
  filterNodes(e) {
    let n = new this.constructor({ directed: this._isDirected, multigraph: this._isMultigraph, compound: this._isCompound });
    n.setGraph(this.graph()), Object.entries(this._nodes).forEach(([o, i]) => {
      e(o) && n.setNode(o, i);
    }), Object.values(this._edgeObjs).forEach((o) => {
      n.hasNode(o.v) && n.hasNode(o.w) && n.setEdge(o, this.edge(o));
    });
    let t = {}, r = (o) => {
      let i = this.parent(o);
      return !i || n.hasNode(i) ? (t[o] = i, i) : i in t ? t[i] : r(i);
    };
    return this._isCompound && n.nodes().forEach((o) => n.setParent(o, r(o))), n;
  }
  setDefaultEdgeLabel(e) {
    return typeof e != "function" ? this._defaultEdgeLabelFn = () => e : this._defaultEdgeLabelFn = e, this;
  }
  edgeCount() {
    return this._edgeCount;
  }
  edges() {
    return Object.values(this._edgeObjs);
  }
  setPath(e, n) {
    return e.reduce((t, r) => (n !== void 0 ? this.setEdge(t, r, n) : this.setEdge(t, r), r)), this;
  }
  setEdge(e, n, t, r) {
    let o, i, s, a, l = false;
    typeof e == "object" && e !== null && "v" in e ? (o = e.v, i = e.w, s = e.name, arguments.length === 2 && (a = n, l = true)) : (o = e, i = n, s = r, arguments.length > 2 && (a = t, l = true)), o = "" + o, i = "" + i, s !== void 0 && (s = "" + s);
    let u = z(this._isDirected, o, i, s);
    if (u in this._edgeLabels) return l && (this._edgeLabels[u] = a), this;
    if (s !== void 0 && !this._isMultigraph) throw new Error("Cannot set a named edge when isMultigraph = false");
    this.setNode(o), this.setNode(i), this._edgeLabels[u] = l ? a : this._defaultEdgeLabelFn(o, i, s);
    let d = Fn(this._isDirected, o, i, s);
    return o = d.v, i = d.w, Object.freeze(d), this._edgeObjs[u] = d, Re(this._preds[i], o), Re(this._sucs[o], i), this._in[i][u] = d, this._out[o][u] = d, this._edgeCount++, this;
  }
  edge(e, n, t) {
    let r = arguments.length === 1 ? oe(this._isDirected, e) : z(this._isDirected, e, n, t);
    return this._edgeLabels[r];
  }
  edgeAsObj(e, n, t) {
    let r = arguments.length === 1 ? this.edge(e) : this.edge(e, n, t);
    return typeof r != "object" || r === null ? { label: r } : r;
  }
  hasEdge(e, n, t) {
    return (arguments.length === 1 ? oe(this._isDirected, e) : z(this._isDirected, e, n, t)) in this._edgeLabels;
  }
  removeEdge(e, n, t) {
    let r = arguments.length === 1 ? oe(this._isDirected, e) : z(this._isDirected, e, n, t), o = this._edgeObjs[r];
    if (o) {
      let i = o.v, s = o.w;
      delete this._edgeLabels[r], delete this._edgeObjs[r], Ie(this._preds[s], i), Ie(this._sucs[i], s), delete this._in[s][r], delete this._out[i][r], this._edgeCount--;
    }
    return this;
  }
  inEdges(e, n) {
    return this.isDirected() ? this.filterEdges(this._in[e], e, n) : this.nodeEdges(e, n);
  }
  outEdges(e, n) {
    return this.isDirected() ? this.filterEdges(this._out[e], e, n) : this.nodeEdges(e, n);
  }
  nodeEdges(e, n) {
    if (e in this._nodes) return this.filterEdges({ ...this._in[e], ...this._out[e] }, e, n);
  }
  _removeFromParentsChildList(e) {
    delete this._children[this._parent[e]][e];
  }
  filterEdges(e, n, t) {
    if (!e) return;
    let r = Object.values(e);
    return t ? r.filter((o) => o.v === n && o.w === t || o.v === t && o.w === n) : r;
  }
};
function Re(e, n) {
  e[n] ? e[n]++ : e[n] = 1;
}
function Ie(e, n) {
  e[n] !== void 0 && !--e[n] && delete e[n];
}
function z(e, n, t, r) {
  let o = "" + n, i = "" + t;
  if (!e && o > i) {
    let s = o;
    o = i, i = s;
  }
  return o + "" + i + "" + (r === void 0 ? "\0" : r);
}
function Fn(e, n, t, r) {
  let o = "" + n, i = "" + t;
  if (!e && o > i) {
    let a = o;
    o = i, i = a;
  }
  let s = { v: o, w: i };
  return r && (s.name = r), s;
}
function oe(e, n) {
  return z(e, n.v, n.w, n.name);
}
var Dn = {};
Se(Dn, { read: () => Bn, write: () => An });
function An(e) {
  let n = { options: { directed: e.isDirected(), multigraph: e.isMultigraph(), compound: e.isCompound() }, nodes: Vn(e), edges: Yn(e) }, t = e.graph();
  return t !== void 0 && (n.value = structuredClone(t)), n;
}
function Vn(e) {
  return e.nodes().map((n) => {
    let t = e.node(n), r = e.parent(n), o = { v: n };
    return t !== void 0 && (o.value = t), r !== void 0 && (o.parent = r), o;
  });
}
function Yn(e) {
  return e.edges().map((n) => {
    let t = e.edge(n), r = { v: n.v, w: n.w };
    return n.name !== void 0 && (r.name = n.name), t !== void 0 && (r.value = t), r;
  });
}
function Bn(e) {
  let n = new Q(e.options);
  return e.value !== void 0 && n.setGraph(e.value), e.nodes.forEach((t) => {
    n.setNode(t.v, t.value), t.parent && n.setParent(t.v, t.parent);
  }), e.edges.forEach((t) => {
    n.setEdge({ v: t.v, w: t.w, name: t.name }, t.value);
  }), n;
}
var H = {};
Se(H, { CycleException: () => K, bellmanFord: () => Me, components: () => zn, dijkstra: () => J, dijkstraAll: () => $n, findCycles: () => Un, floydWarshall: () => Kn, isAcyclic: () => Zn, postorder: () => nt, preorder: () => tt, prim: () => rt, shortestPaths: () => ot, tarjan: () => Fe, topsort: () => De });
var Wn = () => 1;
function Me(e, n, t, r) {
  return Xn(e, String(n), t || Wn, r || function(o) {
    var i;
    return (i = e.outEdges(o)) != null ? i : [];
  });
}
function Xn(e, n, t, r) {
  let o = {}, i, s = 0, a = e.nodes(), l = function(c) {
    let f = o[c.v], h2 = o[c.w];
    if (!f || !h2) return;
    let g = t(c);
    f.distance + g < h2.distance && (o[c.w] = { distance: f.distance + g, predecessor: c.v }, i = true);
  }, u = function() {
    a.forEach(function(c) {
      r(c).forEach(function(f) {
        let h2 = f.v === c ? f.v : f.w, g = h2 === f.v ? f.w : f.v;
        l({ v: h2, w: g });
      });
    });
  };
  a.forEach(function(c) {
    let f = c === n ? 0 : Number.POSITIVE_INFINITY;
    o[c] = { distance: f, predecessor: "" };
  });
  let d = a.length;
  for (let c = 1; c < d && (i = false, s++, u(), !!i); c++) ;
  if (s === d - 1 && (i = false, u(), i)) throw new Error("The graph contains a negative weight cycle");
  return o;
}
function zn(e) {
  let n = {}, t = [], r;
  function o(i) {
    var s, a;
    i in n || (n[i] = true, r.push(i), (s = e.successors(i)) == null || s.forEach(o), (a = e.predecessors(i)) == null || a.forEach(o));
  }
  return e.nodes().forEach(function(i) {
    r = [], o(i), r.length && t.push(r);
  }), t;
}
var Pe = class {
  constructor() {
    this._arr = [], this._keyIndices = {};
  }
  size() {
    return this._arr.length;
  }
  keys() {
    return this._arr.map((e) => e.key);
  }
  has(e) {
    return e in this._keyIndices;
  }
  priority(e) {
    let n = this._keyIndices[e];
    if (n !== void 0) return this._arr[n].priority;
  }
  min() {
    if (this.size() === 0) throw new Error("Queue underflow");
    return this._arr[0].key;
  }
  add(e, n) {
    let t = this._keyIndices, r = String(e);
    if (!(r in t)) {
      let o = this._arr, i = o.length;
      return t[r] = i, o.push({ key: r, priority: n }), this._decrease(i), true;
    }
    return false;
  }
  removeMin() {
    if (this.size() === 0) throw new Error("Queue underflow");
    this._swap(0, this._arr.length - 1);
    let e = this._arr.pop();
    return delete this._keyIndices[e.key], this._heapify(0), e.key;
  }
  decrease(e, n) {
    let t = this._keyIndices[e];
    if (t === void 0) throw new Error(`Key not found: ${e}`);
    let r = this._arr[t].priority;
    if (n > r) throw new Error(`New priority is greater than current priority. Key: ${e} Old: ${r} New: ${n}`);
    this._arr[t].priority = n, this._decrease(t);
  }
  _heapify(e) {
    let n = this._arr, t = 2 * e, r = t + 1, o = e;
    t < n.length && (o = n[t].priority < n[o].priority ? t : o, r < n.length && (o = n[r].priority < n[o].priority ? r : o), o !== e && (this._swap(e, o), this._heapify(o)));
  }
  _decrease(e) {
    let n = this._arr, t = n[e].priority, r;
    for (; e !== 0 && (r = e >> 1, !(n[r].priority < t)); ) this._swap(e, r), e = r;
  }
  _swap(e, n) {
    let t = this._arr, r = this._keyIndices, o = t[e], i = t[n];
    t[e] = i, t[n] = o, r[i.key] = e, r[o.key] = n;
  }
};
var Hn = () => 1;
function J(e, n, t, r) {
  let o = function(i) {
    var s;
    return (s = e.outEdges(i)) != null ? s : [];
  };
  return qn(e, String(n), t || Hn, r || o);
}
function qn(e, n, t, r) {
  let o = {}, i = new Pe(), s, a, l = function(u) {
    let d = u.v !== s ? u.v : u.w, c = o[d];
    if (!c) return;
    let f = t(u), h2 = a.distance + f;
    if (f < 0) throw new Error("dijkstra does not allow negative edge weights. Bad edge: " + u + " Weight: " + f);
    h2 < c.distance && (c.distance = h2, c.predecessor = s, i.decrease(d, h2));
  };
  for (e.nodes().forEach(function(u) {
    let d = u === n ? 0 : Number.POSITIVE_INFINITY;
    o[u] = { distance: d, predecessor: "" }, i.add(u, d);
  }); i.size() > 0; ) {
    s = i.removeMin();
    let u = o[s];
    if (!u || u.distance === Number.POSITIVE_INFINITY) break;
    a = u, r(s).forEach(l);
  }
  return o;
}
function $n(e, n, t) {
  return e.nodes().reduce(function(r, o) {
    return r[o] = J(e, o, n, t), r;
  }, {});
}
function Fe(e) {
  let n = 0, t = [], r = {}, o = [];
  function i(s) {
    var a;
    let l = r[s] = { onStack: true, lowlink: n, index: n++ };
    if (t.push(s), (a = e.successors(s)) == null || a.forEach(function(u) {
      if (u in r) {
        let d = r[u];
        d != null && d.onStack && (l.lowlink = Math.min(l.lowlink, d.index));
      } else {
        i(u);
        let d = r[u];
        d && (l.lowlink = Math.min(l.lowlink, d.lowlink));
      }
    }), l.lowlink === l.index) {
      let u = [], d;
      do {
        d = t.pop();
        let c = r[d];
        c && (c.onStack = false), u.push(d);
      } while (s !== d);
      o.push(u);
    }
  }
  return e.nodes().forEach(function(s) {
    s in r || i(s);
  }), o;
}
function Un(e) {
  return Fe(e).filter(function(n) {
    var t;
    let r = n[0];
    return r ? n.length > 1 || n.length === 1 && ((t = e.outEdges(r, r)) != null ? t : []).length > 0 : false;
  });
}
var Jn = () => 1;
function Kn(e, n, t) {
  return Qn(e, n || Jn, t || function(r) {
    var o;
    return (o = e.outEdges(r)) != null ? o : [];
  });
}
function Qn(e, n, t) {
  let r = {}, o = e.nodes();
  return o.forEach(function(i) {
    let s = {};
    r[i] = s, s[i] = { distance: 0, predecessor: "" }, o.forEach(function(a) {
      i !== a && (s[a] = { distance: Number.POSITIVE_INFINITY, predecessor: "" });
    }), t(i).forEach(function(a) {
      let l = a.v === i ? a.w : a.v, u = n(a);
      s[l] = { distance: u, predecessor: i };
    });
  }), o.forEach(function(i) {
    let s = r[i];
    s && o.forEach(function(a) {
      let l = r[a];
      l && o.forEach(function(u) {
        let d = l[i], c = s[u], f = l[u];
        if (d && c && f) {
          let h2 = d.distance + c.distance;
          h2 < f.distance && (f.distance = h2, f.predecessor = c.predecessor);
        }
      });
    });
  }), r;
}
var K = class extends Error {
  constructor(e) {
    super(e), this.name = "CycleException";
  }
};
function De(e) {
  let n = {}, t = {}, r = [];
  function o(i) {
    var s;
    if (i in t) throw new K();
    i in n || (t[i] = true, n[i] = true, (s = e.predecessors(i)) == null || s.forEach(o), delete t[i], r.push(i));
  }
  if (e.sinks().forEach(o), Object.keys(n).length !== e.nodeCount()) throw new K();
  return r;
}
function Zn(e) {
  try {
    De(e);
  } catch (n) {
    if (n instanceof K) return false;
    throw n;
  }
  return true;
}
function et(e, n, t, r, o) {
  Array.isArray(n) || (n = [n]);
  let i = ((a) => {
    var l;
    return (l = e.isDirected() ? e.successors(a) : e.neighbors(a)) != null ? l : [];
  }), s = {};
  return n.forEach(function(a) {
    if (!e.hasNode(a)) throw new Error("Graph does not have node: " + a);
    o = Ae(e, a, t === "post", s, i, r, o);
  }), o;
}
function Ae(e, n, t, r, o, i, s) {
  return n in r || (r[n] = true, t || (s = i(s, n)), o(n).forEach(function(a) {
    s = Ae(e, a, t, r, o, i, s);
  }), t && (s = i(s, n))), s;
}
function Ve(e, n, t) {
  return et(e, n, t, function(r, o) {
    return r.push(o), r;
  }, []);
}
function nt(e, n) {
  return Ve(e, n, "post");
}
function tt(e, n) {
  return Ve(e, n, "pre");
}
function rt(e, n) {
  var t;
  let r = new Q(), o = {}, i = new Pe(), s;
  function a(d) {
    let c = d.v === s ? d.w : d.v, f = i.priority(c);
    if (f !== void 0) {
      let h2 = n(d);
      h2 < f && (o[c] = s, i.decrease(c, h2));
    }
  }
  if (e.nodeCount() === 0) return r;
  e.nodes().forEach(function(d) {
    i.add(d, Number.POSITIVE_INFINITY), r.setNode(d);
  });
  let l = e.nodes()[0];
  l !== void 0 && i.decrease(l, 0);
  let u = false;
  for (; i.size() > 0; ) {
    if (s = i.removeMin(), s in o) r.setEdge(s, o[s]);
    else {
      if (u) throw new Error("Input graph is not connected: " + e);
      u = true;
    }
    (t = e.nodeEdges(s)) == null || t.forEach(a);
  }
  return r;
}
function ot(e, n, t, r) {
  return it(e, n, t, r != null ? r : ((o) => {
    var i;
    return (i = e.outEdges(o)) != null ? i : [];
  }));
}
function it(e, n, t, r) {
  if (t === void 0) return J(e, n, t, r);
  let o = false, i = e.nodes();
  for (let s = 0; s < i.length; s++) {
    let a = i[s];
    if (a === void 0) continue;
    let l = r(a);
    for (let u = 0; u < l.length; u++) {
      let d = l[u];
      if (!d) continue;
      let c = d.v === a ? d.v : d.w, f = c === d.v ? d.w : d.v;
      t({ v: c, w: f }) < 0 && (o = true);
    }
    if (o) return Me(e, n, t, r);
  }
  return J(e, n, t, r);
}
var T = Q;
function M(e, n, t, r) {
  let o = r;
  for (; e.hasNode(o); ) o = $(r);
  return t.dummy = n, e.setNode(o, t), o;
}
function Ye(e) {
  let n = new T().setGraph(e.graph());
  return e.nodes().forEach((t) => n.setNode(t, e.node(t))), e.edges().forEach((t) => {
    let r = n.edge(t.v, t.w) || { weight: 0, minlen: 1 }, o = e.edge(t);
    n.setEdge(t.v, t.w, { weight: r.weight + o.weight, minlen: Math.max(r.minlen, o.minlen) });
  }), n;
}
function Z(e) {
  let n = new T({ multigraph: e.isMultigraph() }).setGraph(e.graph());
  return e.nodes().forEach((t) => {
    e.children(t).length || n.setNode(t, e.node(t));
  }), e.edges().forEach((t) => {
    n.setEdge(t, e.edge(t));
  }), n;
}
function se(e, n) {
  let t = e.x, r = e.y, o = n.x - t, i = n.y - r, s = e.width / 2, a = e.height / 2;
  if (!o && !i) throw new Error("Not possible to find intersection inside of the rectangle");
  let l, u;
  return o === 0 || Math.abs(i) * s > Math.abs(o) * a ? (i < 0 && (a = -a), l = a * o / i, u = a) : (o < 0 && (s = -s), l = s, u = s * i / o), { x: t + l, y: r + u };
}
function P(e) {
  let n = D(de(e) + 1).map(() => []);
  return e.nodes().forEach((t) => {
    let r = e.node(t), o = r.rank;
    o !== void 0 && (n[o] || (n[o] = []), n[o][r.order] = t);
  }), n;
}
function Be(e) {
  let n = e.nodes().map((r) => {
    let o = e.node(r).rank;
    return o === void 0 ? Number.MAX_VALUE : o;
  }), t = S(Math.min, n);
  e.nodes().forEach((r) => {
    let o = e.node(r);
    Object.hasOwn(o, "rank") && (o.rank -= t);
  });
}
function We(e) {
  let n = e.nodes().map((s) => e.node(s).rank).filter((s) => s !== void 0), t = S(Math.min, n), r = [];
  e.nodes().forEach((s) => {
    let a = e.node(s).rank - t;
    r[a] || (r[a] = []), r[a].push(s);
  });
  let o = 0, i = e.graph().nodeRankFactor;
  Array.from(r).forEach((s, a) => {
    s === void 0 && a % i !== 0 ? --o : s !== void 0 && o && s.forEach((l) => e.node(l).rank += o);
  });
}
function ae(e, n, t, r) {
  let o = { width: 0, height: 0 };
  return arguments.length >= 4 && (o.rank = t, o.order = r), M(e, "border", o, n);
}
function st(e, n = Xe) {
  let t = [];
  for (let r = 0; r < e.length; r += n) {
    let o = e.slice(r, r + n);
    t.push(o);
  }
  return t;
}
var Xe = 65535;
function S(e, n) {
  if (n.length > Xe) {
    let t = st(n);
    return e(...t.map((r) => e(...r)));
  } else return e(...n);
}
function de(e) {
  let t = e.nodes().map((r) => {
    let o = e.node(r).rank;
    return o === void 0 ? Number.MIN_VALUE : o;
  });
  return S(Math.max, t);
}
function ze(e, n) {
  let t = { lhs: [], rhs: [] };
  return e.forEach((r) => {
    n(r) ? t.lhs.push(r) : t.rhs.push(r);
  }), t;
}
function q(e, n) {
  return n();
}
var at = 0;
function $(e) {
  let n = ++at;
  return e + ("" + n);
}
function D(e, n, t = 1) {
  n == null && (n = e, e = 0);
  let r = (i) => i < n;
  t < 0 && (r = (i) => n < i);
  let o = [];
  for (let i = e; r(i); i += t) o.push(i);
  return o;
}
function W(e, n) {
  let t = {};
  for (let r of n) e[r] !== void 0 && (t[r] = e[r]);
  return t;
}
function X(e, n) {
  let t;
  return typeof n == "string" ? t = (r) => r[n] : t = n, Object.entries(e).reduce((r, [o, i]) => (r[o] = t(i, o), r), {});
}
function He(e, n) {
  return e.reduce((t, r, o) => (t[r] = n[o], t), {});
}
var V = "\0";
function ee(e, n, t) {
  var u, d, c, f, h2, g;
  if (!(e && n && t && n.dummy === "edge" && t.dummy === "edge" && n.edgeObj && t.edgeObj && e[n.edgeObj.v] && e[t.edgeObj.v] && e[n.edgeObj.w] && e[t.edgeObj.w])) return 0;
  let r = true;
  n.edgeObj.w === t.edgeObj.w && (r = false);
  let o = r ? (d = (u = e[n.edgeObj.v]) == null ? void 0 : u.rank) != null ? d : NaN + 1 : (f = (c = e[n.edgeObj.w]) == null ? void 0 : c.rank) != null ? f : NaN - 1, i = Object.entries(e).find((m) => {
    var L, y;
    return ((L = m[1].edgeObj) == null ? void 0 : L.v) === n.edgeObj.v && ((y = m[1].edgeObj) == null ? void 0 : y.w) === n.edgeObj.w && m[1].rank === o;
  }), s = Object.entries(e).find((m) => {
    var L, y;
    return ((L = m[1].edgeObj) == null ? void 0 : L.v) === t.edgeObj.v && ((y = m[1].edgeObj) == null ? void 0 : y.w) === t.edgeObj.w && m[1].rank === o;
  });
  if (!i || !s) return 0;
  let a = (h2 = i[1].order) != null ? h2 : NaN, l = (g = s[1].order) != null ? g : NaN;
  return isNaN(a - l) ? 0 : a - l;
}
var ce = class {
  constructor() {
    je(this, "_sentinel");
    let n = {};
    n._next = n._prev = n, this._sentinel = n;
  }
  dequeue() {
    let n = this._sentinel, t = n._prev;
    if (t !== n) return qe(t), t;
  }
  enqueue(n) {
    let t = this._sentinel;
    n._prev && n._next && qe(n), n._next = t._next, t._next._prev = n, t._next = n, n._prev = t;
  }
  toString() {
    let n = [], t = this._sentinel, r = t._prev;
    for (; r !== t; ) n.push(JSON.stringify(r, dt)), r = r._prev;
    return "[" + n.join(", ") + "]";
  }
};
function qe(e) {
  e._prev._next = e._next, e._next._prev = e._prev, delete e._next, delete e._prev;
}
function dt(e, n) {
  if (e !== "_next" && e !== "_prev") return n;
}
var $e = ce;
var lt = () => 1;
function be(e, n) {
  if (e.nodeCount() <= 1) return [];
  let t = ct(e, n || lt);
  return ut(t.graph, t.buckets, t.zeroIdx).flatMap((o) => e.outEdges(o.v, o.w) || []);
}
function ut(e, n, t) {
  var a;
  let r = [], o = n[n.length - 1], i = n[0], s;
  for (; e.nodeCount(); ) {
    for (; s = i.dequeue(); ) fe(e, n, t, s);
    for (; s = o.dequeue(); ) fe(e, n, t, s);
    if (e.nodeCount()) {
      for (let l = n.length - 2; l > 0; --l) if (s = (a = n[l]) == null ? void 0 : a.dequeue(), s) {
        r = r.concat(fe(e, n, t, s, true) || []);
        break;
      }
    }
  }
  return r;
}
function fe(e, n, t, r, o) {
  let i = [], s = o ? i : void 0;
  return (e.inEdges(r.v) || []).forEach((a) => {
    let l = e.edge(a), u = e.node(a.v);
    o && i.push({ v: a.v, w: a.w }), u.out -= l, he(n, t, u);
  }), (e.outEdges(r.v) || []).forEach((a) => {
    let l = e.edge(a), u = a.w, d = e.node(u);
    d.in -= l, he(n, t, d);
  }), e.removeNode(r.v), s;
}
function ct(e, n) {
  let t = new T(), r = 0, o = 0;
  e.nodes().forEach((a) => {
    t.setNode(a, { v: a, in: 0, out: 0 });
  }), e.edges().forEach((a) => {
    let l = t.edge(a.v, a.w) || 0, u = n(a), d = l + u;
    t.setEdge(a.v, a.w, d);
    let c = t.node(a.v), f = t.node(a.w);
    o = Math.max(o, c.out += u), r = Math.max(r, f.in += u);
  });
  let i = ft(o + r + 3).map(() => new $e()), s = r + 1;
  return t.nodes().forEach((a) => {
    he(i, s, t.node(a));
  }), { graph: t, buckets: i, zeroIdx: s };
}
function he(e, n, t) {
  var r, o, i;
  t.out ? t.in ? (i = e[t.out - t.in + n]) == null || i.enqueue(t) : (o = e[e.length - 1]) == null || o.enqueue(t) : (r = e[0]) == null || r.enqueue(t);
}
function ft(e) {
  let n = [];
  for (let t = 0; t < e; t++) n.push(t);
  return n;
}
function Ue(e, n) {
  (e.graph().acyclicer === "greedy" ? be(e, r(e)) : ht(e, n != null ? n : null)).forEach((o) => {
    let i = e.edge(o);
    e.removeEdge(o), i.forwardName = o.name, i.reversed = true, e.setEdge(o.w, o.v, i, $("rev"));
  });
  function r(o) {
    return (i) => o.edge(i).weight;
  }
}
function ht(e, n) {
  let t = [], r = {}, o = {};
  function i(l) {
    Object.hasOwn(o, l) || (o[l] = true, r[l] = true, e.outEdges(l).forEach((u) => {
      Object.hasOwn(r, u.w) ? t.push(u) : i(u.w);
    }), delete r[l]);
  }
  function s(l) {
    var u;
    Object.hasOwn(o, l) || (o[l] = true, r[l] = true, (u = e.outEdges(l)) == null || u.forEach((d) => {
      var c, f;
      Object.hasOwn(r, d.w) || ((c = n.node(l)) == null ? void 0 : c.rank) > ((f = n.node(d.w)) == null ? void 0 : f.rank) && bt(e, d.w, d) ? t.push(d) : s(d.w);
    }), delete r[l]);
  }
  let a = i;
  return n && typeof n.node == "function" && (a = s), e.sources().forEach(a), e.nodes().forEach(a), t;
}
function Je(e) {
  e.edges().forEach((n) => {
    let t = e.edge(n);
    if (t.reversed) {
      e.removeEdge(n);
      let r = t.forwardName;
      delete t.reversed, delete t.forwardName, e.setEdge(n.w, n.v, t, r);
    }
  });
}
function bt(e, n, t) {
  let r = /* @__PURE__ */ new Set();
  function o(i) {
    var s;
    if (e.sources().includes(i)) return true;
    r.add(i);
    for (let a of (s = e.inEdges(i)) != null ? s : []) if (!(a.v === t.v && a.w === t.w) && !r.has(a.v) && o(a.v)) return true;
    return false;
  }
  return o(n);
}
function Ke(e) {
  e.graph().dummyChains = [], e.edges().forEach((n) => pt(e, n));
}
function pt(e, n) {
  let t = n.v, r = e.node(t).rank, o = n.w, i = e.node(o).rank, s = n.name, a = e.edge(n), l = a.labelRank;
  if (i === r + 1) return;
  e.removeEdge(n);
  let u, d, c;
  for (c = 0, ++r; r < i; ++c, ++r) a.points = [], d = { width: 0, height: 0, edgeLabel: a, edgeObj: n, rank: r }, u = M(e, "edge", d, "_d"), r === l && (d.width = a.width, d.height = a.height, d.dummy = "edge-label", d.labelpos = a.labelpos), e.setEdge(t, u, { weight: a.weight }, s), c === 0 && e.graph().dummyChains.push(u), t = u;
  e.setEdge(t, o, { weight: a.weight }, s);
}
function Qe(e) {
  e.graph().dummyChains.forEach((n) => {
    let t = e.node(n), r = t.edgeLabel, o;
    for (e.setEdge(t.edgeObj, r); t.dummy; ) o = e.successors(n)[0], e.removeNode(n), r.points.push({ x: t.x, y: t.y }), t.dummy === "edge-label" && (r.x = t.x, r.y = t.y, r.width = t.width, r.height = t.height), n = o, t = e.node(n);
  });
}
function U(e) {
  let n = {};
  function t(r) {
    let o = e.node(r);
    if (Object.hasOwn(n, r)) return o.rank;
    n[r] = true;
    let i = e.outEdges(r), s = i ? i.map((l) => l == null ? Number.POSITIVE_INFINITY : t(l.w) - e.edge(l).minlen) : [], a = S(Math.min, s);
    return a === Number.POSITIVE_INFINITY && (a = 0), o.rank = a;
  }
  e.sources().forEach(t);
}
function A(e, n) {
  return e.node(n.w).rank - e.node(n.v).rank - e.edge(n).minlen;
}
var ne = Et;
function Et(e) {
  let n = new T({ directed: false }), t = e.nodes();
  if (t.length === 0) throw new Error("Graph must have at least one node");
  let r = t[0], o = e.nodeCount();
  n.setNode(r, {});
  let i, s;
  for (; Lt(n, e) < o && (i = yt(n, e), !!i); ) s = n.hasNode(i.v) ? A(e, i) : -A(e, i), wt(n, e, s);
  return n;
}
function Lt(e, n) {
  function t(r) {
    let o = n.nodeEdges(r);
    o && o.forEach((i) => {
      let s = i.v, a = r === s ? i.w : s;
      !e.hasNode(a) && !A(n, i) && (e.setNode(a, {}), e.setEdge(r, a, {}), t(a));
    });
  }
  return e.nodes().forEach(t), e.nodeCount();
}
function yt(e, n) {
  return n.edges().reduce((r, o) => {
    let i = Number.POSITIVE_INFINITY;
    return e.hasNode(o.v) !== e.hasNode(o.w) && (i = A(n, o)), i < r[0] ? [i, o] : r;
  }, [Number.POSITIVE_INFINITY, null])[1];
}
function wt(e, n, t) {
  e.nodes().forEach((r) => n.node(r).rank += t);
}
var { preorder: Nt, postorder: Gt } = H;
var en = Y;
Y.initLowLimValues = pe;
Y.initCutValues = ge;
Y.calcCutValue = nn;
Y.leaveEdge = rn;
Y.enterEdge = on;
Y.exchangeEdges = sn;
function Y(e) {
  e = Ye(e), U(e);
  let n = ne(e);
  pe(n), ge(n, e);
  let t, r;
  for (; t = rn(n); ) r = on(n, e, t), sn(n, e, t, r);
}
function ge(e, n) {
  let t = Gt(e, e.nodes());
  t = t.slice(0, t.length - 1), t.forEach((r) => vt(e, n, r));
}
function vt(e, n, t) {
  let o = e.node(t).parent, i = e.edge(t, o);
  i.cutvalue = nn(e, n, t);
}
function nn(e, n, t) {
  let o = e.node(t).parent, i = true, s = n.edge(t, o), a = 0;
  s || (i = false, s = n.edge(o, t)), a = s.weight;
  let l = n.nodeEdges(t);
  return l && l.forEach((u) => {
    let d = u.v === t, c = d ? u.w : u.v;
    if (c !== o) {
      let f = d === i, h2 = n.edge(u).weight;
      if (a += f ? h2 : -h2, xt(e, t, c)) {
        let m = e.edge(t, c).cutvalue;
        a += f ? -m : m;
      }
    }
  }), a;
}
function pe(e, n) {
  arguments.length < 2 && (n = e.nodes()[0]), tn(e, {}, 1, n);
}
function tn(e, n, t, r, o) {
  let i = t, s = e.node(r);
  n[r] = true;
  let a = e.neighbors(r);
  return a && a.forEach((l) => {
    Object.hasOwn(n, l) || (t = tn(e, n, t, l, r));
  }), s.low = i, s.lim = t++, o ? s.parent = o : delete s.parent, t;
}
function rn(e) {
  return e.edges().find((n) => e.edge(n).cutvalue < 0);
}
function on(e, n, t) {
  let r = t.v, o = t.w;
  n.hasEdge(r, o) || (r = t.w, o = t.v);
  let i = e.node(r), s = e.node(o), a = i, l = false;
  return i.lim > s.lim && (a = s, l = true), n.edges().filter((d) => l === Ze(e, e.node(d.v), a) && l !== Ze(e, e.node(d.w), a)).reduce((d, c) => A(n, c) < A(n, d) ? c : d);
}
function sn(e, n, t, r) {
  let o = t.v, i = t.w;
  e.removeEdge(o, i), e.setEdge(r.v, r.w, {}), pe(e), ge(e, n), kt(e, n);
}
function kt(e, n) {
  let t = e.nodes().find((o) => !e.node(o).parent);
  if (!t) return;
  let r = Nt(e, [t]);
  r = r.slice(1), r.forEach((o) => {
    let s = e.node(o).parent, a = n.edge(o, s), l = false;
    a || (a = n.edge(s, o), l = true), n.node(o).rank = n.node(s).rank + (l ? a.minlen : -a.minlen);
  });
}
function xt(e, n, t) {
  return e.hasEdge(n, t);
}
function Ze(e, n, t) {
  return t.low <= n.lim && n.lim <= t.lim;
}
var dn = _t;
function _t(e) {
  let n = e.graph().ranker;
  if (typeof n == "function") return n(e);
  switch (n) {
    case "network-simplex":
      an(e);
      break;
    case "tight-tree":
      Ct(e);
      break;
    case "longest-path":
      Ot(e);
      break;
    case "none":
      break;
    default:
      an(e);
  }
}
var Ot = U;
function Ct(e) {
  U(e), ne(e);
}
function an(e) {
  en(e);
}
var ln = Tt;
function Tt(e) {
  let n = Rt(e), t = e.graph();
  if (!Array.isArray(t.dummyChains)) return;
  t.dummyChains.forEach((o) => {
    let i = e.node(o), s = i.edgeObj, a = jt(e, n, s.v, s.w), l = a.path, u = a.lca, d = 0, c = l[d], f = true;
    for (; o !== s.w; ) {
      if (i = e.node(o), f) {
        for (; (c = l[d]) !== u && e.node(c).maxRank < i.rank; ) d++;
        c === u && (f = false);
      }
      if (!f) {
        for (; d < l.length - 1 && e.node(l[d + 1]).minRank <= i.rank; ) d++;
        c = l[d];
      }
      c !== void 0 && e.setParent(o, c), o = e.successors(o)[0];
    }
  });
}
function jt(e, n, t, r) {
  let o = [], i = [], s = Math.min(n[t].low, n[r].low), a = Math.max(n[t].lim, n[r].lim), l;
  l = t;
  do
    l = e.parent(l), o.push(l);
  while (l && (n[l].low > s || a > n[l].lim));
  let u = l, d = r;
  for (; (d = e.parent(d)) !== u; ) i.push(d);
  return { path: o.concat(i.reverse()), lca: u };
}
function Rt(e) {
  let n = {}, t = 0;
  function r(o) {
    let i = t;
    e.children(o).forEach(r), n[o] = { low: i, lim: t++ };
  }
  return e.children(V).forEach(r), n;
}
function un(e) {
  let n = M(e, "root", {}, "_root"), t = It(e), r = Object.values(t), o = S(Math.max, r) - 1, i = 2 * o + 1;
  e.graph().nestingRoot = n, e.edges().forEach((a) => e.edge(a).minlen *= i);
  let s = St(e) + 1;
  e.children(V).forEach((a) => {
    cn(e, n, i, s, o, t, a);
  }), e.graph().nodeRankFactor = i;
}
function cn(e, n, t, r, o, i, s) {
  var c;
  let a = e.children(s);
  if (!a.length) {
    s !== n && e.setEdge(n, s, { weight: 0, minlen: t });
    return;
  }
  let l = ae(e, "_bt"), u = ae(e, "_bb"), d = e.node(s);
  e.setParent(l, s), d.borderTop = l, e.setParent(u, s), d.borderBottom = u, a.forEach((f) => {
    var b;
    cn(e, n, t, r, o, i, f);
    let h2 = e.node(f), g = h2.borderTop ? h2.borderTop : f, m = h2.borderBottom ? h2.borderBottom : f, L = h2.borderTop ? r : 2 * r, y = g !== m ? 1 : o - ((b = i[s]) != null ? b : 0) + 1;
    e.setEdge(l, g, { weight: L, minlen: y, nestingEdge: true }), e.setEdge(m, u, { weight: L, minlen: y, nestingEdge: true });
  }), e.parent(s) || e.setEdge(n, l, { weight: 0, minlen: o + ((c = i[s]) != null ? c : 0) });
}
function It(e) {
  let n = {};
  function t(r, o) {
    let i = e.children(r);
    i && i.length && i.forEach((s) => t(s, o + 1)), n[r] = o;
  }
  return e.children(V).forEach((r) => t(r, 1)), n;
}
function St(e) {
  return e.edges().reduce((n, t) => n + e.edge(t).weight, 0);
}
function fn(e) {
  let n = e.graph();
  e.removeNode(n.nestingRoot), delete n.nestingRoot, e.edges().forEach((t) => {
    e.edge(t).nestingEdge && e.removeEdge(t);
  });
}
var bn = Pt;
function Pt(e) {
  function n(t) {
    let r = e.children(t), o = e.node(t);
    if (r.length && r.forEach(n), o && Object.hasOwn(o, "minRank")) {
      o.borderLeft = [], o.borderRight = [];
      for (let i = o.minRank, s = o.maxRank + 1; i < s; ++i) hn(e, "borderLeft", "_bl", t, o, i), hn(e, "borderRight", "_br", t, o, i);
    }
  }
  e.children(V).forEach(n);
}
function hn(e, n, t, r, o, i) {
  let s = { width: 0, height: 0, rank: i, borderType: n }, a = o[n][i - 1], l = M(e, "border", s, t);
  o[n][i] = l, e.setParent(l, r), a && e.setEdge(a, l, { weight: 1 });
}
function pn(e) {
  var t;
  let n = (t = e.graph().rankdir) == null ? void 0 : t.toLowerCase();
  (n === "lr" || n === "rl") && En(e);
}
function mn(e) {
  var t;
  let n = (t = e.graph().rankdir) == null ? void 0 : t.toLowerCase();
  (n === "bt" || n === "rl") && Ft(e), (n === "lr" || n === "rl") && (Dt(e), En(e));
}
function En(e) {
  e.nodes().forEach((n) => gn(e.node(n))), e.edges().forEach((n) => gn(e.edge(n)));
}
function gn(e) {
  let n = e.width;
  e.width = e.height, e.height = n;
}
function Ft(e) {
  e.nodes().forEach((n) => me(e.node(n))), e.edges().forEach((n) => {
    var r;
    let t = e.edge(n);
    (r = t.points) == null || r.forEach(me), Object.hasOwn(t, "y") && me(t);
  });
}
function me(e) {
  e.y = -e.y;
}
function Dt(e) {
  e.nodes().forEach((n) => Ee(e.node(n))), e.edges().forEach((n) => {
    var r;
    let t = e.edge(n);
    (r = t.points) == null || r.forEach(Ee), Object.hasOwn(t, "x") && Ee(t);
  });
}
function Ee(e) {
  let n = e.x;
  e.x = e.y, e.y = n;
}
function Le(e, n = null) {
  let t = {}, r = e.nodes().filter((d) => !e.children(d).length), o = r.map((d) => e.node(d).rank), i = S(Math.max, o), s = D(i + 1).map(() => []);
  function a(d) {
    if (t[d]) return;
    t[d] = true;
    let c = e.node(d);
    s[c.rank].push(d);
    let f = e.successors(d);
    f && [...f].sort((g, m) => u(g, m)).forEach(a);
  }
  r.sort((d, c) => e.node(d).rank - e.node(c).rank).forEach(a);
  function u(d, c) {
    let f = e.node(d), h2 = e.node(c);
    return ee(n, f, h2);
  }
  return s;
}
function ye(e, n) {
  let t = 0;
  for (let r = 1; r < n.length; ++r) t += Vt(e, n[r - 1], n[r]);
  return t;
}
function Vt(e, n, t) {
  let r = He(t, t.map((u, d) => d)), o = n.flatMap((u) => {
    let d = e.outEdges(u);
    return d ? d.map((c) => ({ pos: r[c.w], weight: e.edge(c).weight })).sort((c, f) => c.pos - f.pos) : [];
  }), i = 1;
  for (; i < t.length; ) i <<= 1;
  let s = 2 * i - 1;
  i -= 1;
  let a = new Array(s).fill(0), l = 0;
  return o.forEach((u) => {
    let d = u.pos + i;
    a[d] += u.weight;
    let c = 0;
    for (; d > 0; ) d % 2 && (c += a[d + 1]), d = d - 1 >> 1, a[d] += u.weight;
    l += u.weight * c;
  }), l;
}
function we(e, n = []) {
  return n.map((t) => {
    let r = e.inEdges(t);
    if (!r || !r.length) return { v: t };
    {
      let o = r.reduce((i, s) => {
        let a = e.edge(s), l = e.node(s.v);
        return { sum: i.sum + a.weight * l.order, weight: i.weight + a.weight };
      }, { sum: 0, weight: 0 });
      return { v: t, barycenter: o.sum / o.weight, weight: o.weight };
    }
  });
}
function Ne(e, n) {
  let t = {};
  e.forEach((o, i) => {
    let s = { indegree: 0, in: [], out: [], vs: [o.v], i };
    o.barycenter !== void 0 && (s.barycenter = o.barycenter, s.weight = o.weight), t[o.v] = s;
  }), n.edges().forEach((o) => {
    let i = t[o.v], s = t[o.w];
    i !== void 0 && s !== void 0 && (s.indegree++, i.out.push(s));
  });
  let r = Object.values(t).filter((o) => !o.indegree);
  return Yt(r);
}
function Yt(e) {
  let n = [];
  function t(o) {
    return (i) => {
      i.merged || (i.barycenter === void 0 || o.barycenter === void 0 || i.barycenter >= o.barycenter) && Bt(o, i);
    };
  }
  function r(o) {
    return (i) => {
      i.in.push(o), --i.indegree === 0 && e.push(i);
    };
  }
  for (; e.length; ) {
    let o = e.pop();
    n.push(o), o.in.reverse().forEach(t(o)), o.out.forEach(r(o));
  }
  return n.filter((o) => !o.merged).map((o) => W(o, ["vs", "i", "barycenter", "weight"]));
}
function Bt(e, n) {
  let t = 0, r = 0;
  e.weight && (t += e.barycenter * e.weight, r += e.weight), n.weight && (t += n.barycenter * n.weight, r += n.weight), e.vs = n.vs.concat(e.vs), e.barycenter = t / r, e.weight = r, e.i = Math.min(n.i, e.i), n.merged = true;
}
function Ge(e, n, t, r, o) {
  let i = {}, s = null, a = null, l = o;
  typeof n == "boolean" ? (l = n, i = {}) : n && (i = n, s = t != null ? t : null, a = r != null ? r : null);
  let u = ze(e, (y) => Object.hasOwn(y, "barycenter")), d = u.lhs, c = u.rhs.sort((y, b) => b.i - y.i), f = [], h2 = 0, g = 0, m = 0;
  d.sort(Wt(a, s, !!l));
  for (let [y, b] of Object.entries(i)) {
    let p = d.findIndex((E) => E.vs[0] === y);
    d.splice(p + 1, 0, b);
  }
  m = Ln(f, c, m), d.forEach((y) => {
    m += y.vs.length, f.push(y.vs), h2 += y.barycenter * y.weight, g += y.weight, m = Ln(f, c, m);
  });
  let L = { vs: f.flat(1) };
  return g && (L.barycenter = h2 / g, L.weight = g), L;
}
function Ln(e, n, t) {
  let r;
  for (; n.length && (r = n[n.length - 1]).i <= t; ) n.pop(), e.push(r.vs), t++;
  return t;
}
function Wt(e, n, t) {
  return (r, o) => {
    if (r.barycenter < o.barycenter) return -1;
    if (r.barycenter > o.barycenter) return 1;
    if (e && (typeof r.vs[0] == "string" || typeof o.vs[0] == "string")) {
      let i = e.node(r.vs[0]), s = e.node(o.vs[0]), a = ee(n, i, s);
      if (a !== 0) return a;
    }
    return t ? o.i - r.i : r.i - o.i;
  };
}
function te(e, n, t, r, o) {
  var y, b, p, E, w, k, _, O, j, R, I;
  let i = null, s = o;
  typeof r == "boolean" ? (s = r, i = null) : r !== void 0 && (i = r);
  let a = e.children(n), l = e.node(n), u = l ? l.borderLeft : void 0, d = l ? l.borderRight : void 0, c = {};
  u && (a = a.filter((v) => v !== u && v !== d));
  let f = we(e, a);
  f.forEach((v) => {
    if (e.children(v.v).length) {
      let { result: x } = te(e, v.v, t, i, s);
      c[v.v] = x, Object.hasOwn(x, "barycenter") && zt(v, x);
    }
  });
  let h2 = Ne(f, t);
  Xt(h2, c);
  let g = {}, m = false;
  for (let v = 0; v < h2.length; v++) for (let x = v + 1; x < h2.length; x++) if (!(!h2[v] || !h2[x] || !((y = h2[v]) != null && y.barycenter) || !((b = h2[x]) != null && b.barycenter)) && ((p = h2[v]) == null ? void 0 : p.barycenter) === h2[x].barycenter) {
    let G = (w = (E = h2[v]) == null ? void 0 : E.vs[0]) != null ? w : "", N = (_ = (k = h2[x]) == null ? void 0 : k.vs[0]) != null ? _ : "", C = e.node(G), B = e.node(N);
    if (C.dummy === "edge" && B.dummy === "edge" && ((O = C.edgeObj) == null ? void 0 : O.v) === ((j = B.edgeObj) == null ? void 0 : j.v) && ((R = C.edgeObj) == null ? void 0 : R.w) === ((I = B.edgeObj) == null ? void 0 : I.w)) if (C.edgeLabel.reversed) {
      g[N] = h2[v], h2.splice(v, 1), v--;
      break;
    } else g[G] || (g[G] = h2[x], h2.splice(x, 1), x--);
    else m = true;
  }
  let L = Ge(h2, g, i, e, s);
  if (u && d) {
    L.vs = [u, L.vs, d].flat(1);
    let v = e.predecessors(u);
    if (v && v.length) {
      let x = e.node(v[0]), G = e.predecessors(d), N = e.node(G[0]);
      Object.hasOwn(L, "barycenter") || (L.barycenter = 0, L.weight = 0), L.barycenter = (L.barycenter * L.weight + x.order + N.order) / (L.weight + 2), L.weight += 2;
    }
  }
  return Object.defineProperty(L, "result", { value: L, enumerable: false, configurable: true, writable: true }), Object.defineProperty(L, "usedBias", { value: m, enumerable: false, configurable: true, writable: true }), L;
}
function Xt(e, n) {
  e.forEach((t) => {
    t.vs = t.vs.flatMap((r) => n[r] ? n[r].vs : r);
  });
}
function zt(e, n) {
  e.barycenter !== void 0 ? (e.barycenter = (e.barycenter * e.weight + n.barycenter * n.weight) / (e.weight + n.weight), e.weight += n.weight) : (e.barycenter = n.barycenter, e.weight = n.weight);
}
function ve(e, n, t, r) {
  r || (r = e.nodes());
  let o = Ht(e), i = new T({ compound: true }).setGraph({ root: o }).setDefaultNodeLabel((s) => e.node(s));
  return r.forEach((s) => {
    let a = e.node(s), l = e.parent(s);
    if (a.rank === n || a.minRank <= n && n <= a.maxRank) {
      i.setNode(s), i.setParent(s, l || o);
      let u = e[t](s);
      u && u.forEach((d) => {
        let c = d.v === s ? d.w : d.v, f = i.edge(c, s), h2 = f !== void 0 ? f.weight : 0;
        i.setEdge(c, s, { weight: e.edge(d).weight + h2 });
      }), Object.hasOwn(a, "minRank") && i.setNode(s, { borderLeft: a.borderLeft[n], borderRight: a.borderRight[n] });
    }
  }), i;
}
function Ht(e) {
  let n;
  for (; e.hasNode(n = $("_root")); ) ;
  return n;
}
function ke(e, n, t) {
  let r = {}, o;
  t.forEach((i) => {
    let s = e.parent(i), a, l;
    for (; s; ) {
      if (a = e.parent(s), a ? (l = r[a], r[a] = s) : (l = o, o = s), l && l !== s) {
        n.setEdge(l, s);
        return;
      }
      s = a;
    }
  });
}
function re(e, n = {}, t = null) {
  if (typeof n.customOrder == "function") {
    n.customOrder(e, re);
    return;
  }
  let r = de(e), o = yn(e, D(1, r + 1), "inEdges"), i = yn(e, D(r - 1, -1, -1), "outEdges"), s = Le(e, t);
  if (wn(e, s), n.disableOptimalOrderHeuristic) return;
  let a = Number.POSITIVE_INFINITY, l, u = n.constraints || [];
  for (let d = 0, c = 0; c < 4; ++d, ++c) {
    qt(d % 2 ? o : i, d % 4 >= 2, u, t), s = P(e);
    let f = ye(e, s);
    f < a ? (c = 0, l = Object.assign({}, s), a = f) : f === a && (l = structuredClone(s));
  }
  wn(e, l);
}
function yn(e, n, t) {
  let r = /* @__PURE__ */ new Map(), o = (i, s) => {
    r.has(i) || r.set(i, []), r.get(i).push(s);
  };
  for (let i of e.nodes()) {
    let s = e.node(i);
    if (typeof s.rank == "number" && o(s.rank, i), typeof s.minRank == "number" && typeof s.maxRank == "number") for (let a = s.minRank; a <= s.maxRank; a++) a !== s.rank && o(a, i);
  }
  return n.map(function(i) {
    return ve(e, i, t, r.get(i) || []);
  });
}
function qt(e, n, t, r) {
  let o = true, i = new T();
  e.forEach(function(s) {
    t.forEach((d) => i.setEdge(d.left, d.right));
    let a = s.graph().root, { result: l, usedBias: u } = te(s, a, i, r, o);
    n && u && (o = !o), l.vs.forEach((d, c) => s.node(d).order = c), ke(s, i, l.vs);
  });
}
function wn(e, n) {
  Object.values(n).forEach((t) => t.forEach((r, o) => e.node(r).order = o));
}
function $t(e, n) {
  let t = {};
  function r(o, i) {
    let s = 0, a = 0, l = o.length, u = i[i.length - 1];
    return i.forEach((d, c) => {
      let f = Jt(e, d), h2 = f ? e.node(f).order : l;
      (f || d === u) && (i.slice(a, c + 1).forEach((g) => {
        let m = e.predecessors(g);
        m && m.forEach((L) => {
          let y = e.node(L), b = y.order;
          (b < s || h2 < b) && !(y.dummy && e.node(g).dummy) && Gn(t, L, g);
        });
      }), a = c + 1, s = h2);
    }), i;
  }
  return n.length && n.reduce(r), t;
}
function Ut(e, n) {
  let t = {};
  function r(a) {
    var l;
    return ((l = e.node(a)) == null ? void 0 : l.dummy) === "border";
  }
  if (!e.nodes().some(r)) return t;
  function i(a, l, u, d, c) {
    D(l, u).forEach((f) => {
      let h2 = a[f];
      if (h2 !== void 0 && e.node(h2).dummy) {
        let g = e.predecessors(h2);
        g && g.forEach((m) => {
          if (m === void 0) return;
          let L = e.node(m);
          L.dummy && (L.order < d || L.order > c) && Gn(t, m, h2);
        });
      }
    });
  }
  function s(a, l) {
    let u = -1, d = -1, c = 0;
    return l.forEach((f, h2) => {
      if (r(f)) {
        let g = e.predecessors(f);
        if (g && g.length) {
          let m = g[0];
          if (m === void 0) return;
          d = e.node(m).order, i(l, c, h2, u, d), c = h2, u = d;
        }
      }
      i(l, c, l.length, d, a.length);
    }), l;
  }
  return n.length && n.reduce(s), t;
}
function Jt(e, n) {
  if (e.node(n).dummy) {
    let t = e.predecessors(n);
    if (t) return t.find((r) => e.node(r).dummy);
  }
}
function Gn(e, n, t) {
  if (n > t) {
    let o = n;
    n = t, t = o;
  }
  let r = e[n];
  r || (e[n] = r = {}), r[t] = true;
}
function Kt(e, n, t) {
  if (n > t) {
    let o = n;
    n = t, t = o;
  }
  let r = e[n];
  return r !== void 0 && Object.hasOwn(r, t);
}
function Qt(e, n, t, r, o) {
  let i = {}, s = {}, a = {};
  return n.forEach((l) => {
    l.forEach((u, d) => {
      i[u] = u, s[u] = u, a[u] = d;
    });
  }), n.forEach((l) => {
    let u = -1, d = -1, c = false, f = l, h2 = l.findIndex((g) => (o == null ? void 0 : o.includes(g)) || Nn(g, e, o));
    h2 > 0 && (f = [l[h2], ...l.slice(0, h2), ...l.slice(h2 + 1)], c = true), f.forEach((g) => {
      var L;
      let m = r(g);
      if (m && m.length) {
        o != null && o.includes(g) && (m = m.filter((p) => Nn(p, e, o)));
        let y = m.sort((p, E) => {
          let w = a[p], k = a[E];
          return (w !== void 0 ? w : 0) - (k !== void 0 ? k : 0);
        }), b = (y.length - 1) / 2;
        for (let p = Math.floor(b), E = Math.ceil(b); p <= E; ++p) {
          let w = y[p];
          if (w === void 0) continue;
          let k = a[w];
          if (k !== void 0 && s[g] === g && u < k && a[w] !== d && !Kt(t, g, w)) {
            let _ = i[w];
            _ !== void 0 && (s[w] = g, s[g] = i[g] = _, u = k, c && (u = -1, d = (L = a[w]) != null ? L : -1, c = false));
          }
        }
      }
    });
  }), { root: i, align: s };
}
function Zt(e, n, t, r, o = false) {
  let i = {}, s = er(e, n, t, o), a = o ? "borderLeft" : "borderRight";
  function l(h2, g) {
    let m = s.nodes().slice(), L = {}, y = m.pop();
    for (; y; ) {
      if (L[y]) h2(y);
      else {
        L[y] = true, m.push(y);
        for (let b of g(y)) m.push(b);
      }
      y = m.pop();
    }
  }
  function u(h2) {
    let g = s.inEdges(h2);
    g ? i[h2] = g.reduce((m, L) => {
      var p;
      let y = (p = i[L.v]) != null ? p : 0, b = s.edge(L);
      return Math.max(m, y + (b !== void 0 ? b : 0));
    }, 0) : i[h2] = 0;
  }
  function d(h2) {
    let g = s.outEdges(h2), m = Number.POSITIVE_INFINITY;
    g && (m = g.reduce((y, b) => {
      let p = i[b.w], E = s.edge(b);
      return Math.min(y, (p !== void 0 ? p : 0) - (E !== void 0 ? E : 0));
    }, Number.POSITIVE_INFINITY));
    let L = e.node(h2);
    m !== Number.POSITIVE_INFINITY && L.borderType !== a && (i[h2] = Math.max(i[h2] !== void 0 ? i[h2] : 0, m));
  }
  function c(h2) {
    return s.predecessors(h2) || [];
  }
  function f(h2) {
    return s.successors(h2) || [];
  }
  return l(u, c), l(d, f), Object.keys(r).forEach((h2) => {
    var m;
    let g = t[h2];
    g !== void 0 && (i[h2] = (m = i[g]) != null ? m : 0);
  }), i;
}
function er(e, n, t, r) {
  let o = new T(), i = e.graph(), s = or(i.nodesep, i.edgesep, r);
  return n.forEach((a) => {
    let l;
    a.forEach((u) => {
      let d = t[u];
      if (d !== void 0) {
        if (o.setNode(d), l !== void 0) {
          let c = t[l];
          if (c !== void 0) {
            let f = o.edge(c, d);
            o.setEdge(c, d, Math.max(s(e, u, l), f || 0));
          }
        }
        l = u;
      }
    });
  }), o;
}
function nr(e, n) {
  return Object.values(n).reduce((t, r) => {
    let o = Number.NEGATIVE_INFINITY, i = Number.POSITIVE_INFINITY;
    Object.entries(r).forEach(([a, l]) => {
      let u = ir(e, a) / 2;
      o = Math.max(l + u, o), i = Math.min(l - u, i);
    });
    let s = o - i;
    return s < t[0] && (t = [s, r]), t;
  }, [Number.POSITIVE_INFINITY, null])[1];
}
function tr(e, n) {
  let t = Object.values(n), r = S(Math.min, t), o = S(Math.max, t);
  ["u", "d"].forEach((i) => {
    ["l", "r"].forEach((s) => {
      let a = i + s, l = e[a];
      if (!l || l === n) return;
      let u = Object.values(l), d = r - S(Math.min, u);
      s !== "l" && (d = o - S(Math.max, u)), d && (e[a] = X(l, (c) => c + d));
    });
  });
}
function rr(e, n = void 0) {
  let t = e.ul;
  return t ? X(t, (r, o) => {
    var s, a;
    if (n) {
      let l = n.toLowerCase(), u = e[l];
      if (u && u[o] !== void 0) return u[o];
    }
    let i = Object.values(e).map((l) => {
      let u = l[o];
      return u !== void 0 ? u : 0;
    }).sort((l, u) => l - u);
    return (((s = i[1]) != null ? s : 0) + ((a = i[2]) != null ? a : 0)) / 2;
  }) : {};
}
function vn(e, n) {
  let t = P(e), r = Object.assign($t(e, t), Ut(e, t)), o = {}, i;
  ["u", "d"].forEach((a) => {
    i = a === "u" ? t : Object.values(t).reverse(), ["l", "r"].forEach((l) => {
      l === "r" && (i = i.map((f) => Object.values(f).reverse()));
      let d = Qt(e, i, r, (f) => (a === "u" ? e.predecessors(f) : e.successors(f)) || [], n), c = Zt(e, i, d.root, d.align, l === "r");
      l === "r" && (c = X(c, (f) => -f)), o[a + l] = c;
    });
  });
  let s = nr(e, o);
  return tr(o, s), rr(o, e.graph().align);
}
function or(e, n, t) {
  return (r, o, i) => {
    let s = r.node(o), a = r.node(i), l = 0, u;
    if (l += s.width / 2, Object.hasOwn(s, "labelpos")) switch (s.labelpos.toLowerCase()) {
      case "l":
        u = -s.width / 2;
        break;
      case "r":
        u = s.width / 2;
        break;
    }
    if (u && (l += t ? u : -u), u = void 0, l += (s.dummy ? n : e) / 2, l += (a.dummy ? n : e) / 2, l += a.width / 2, Object.hasOwn(a, "labelpos")) switch (a.labelpos.toLowerCase()) {
      case "l":
        u = a.width / 2;
        break;
      case "r":
        u = -a.width / 2;
        break;
    }
    return u && (l += t ? u : -u), l;
  };
}
function ir(e, n) {
  return e.node(n).width;
}
function Nn(e, n, t) {
  var s;
  if (!t) return false;
  let r = (s = n.node(e)) == null ? void 0 : s.edgeObj;
  if (!r || n.node(e).edgeLabel.reversed) return false;
  let o = t.indexOf(r == null ? void 0 : r.v), i = t.indexOf(r == null ? void 0 : r.w);
  return o !== -1 && i !== -1 && o === (i + 1) % t.length || o === (i - 1) % t.length;
}
function kn(e, n) {
  e = Z(e), sr(e), Object.entries(vn(e, n)).forEach(([t, r]) => e.node(t).x = r);
}
function sr(e) {
  let n = P(e), t = e.graph(), r = t.ranksep, o = t.rankalign, i = 0;
  n.forEach((s) => {
    let a = s.reduce((l, u) => {
      var c;
      let d = (c = e.node(u).height) != null ? c : 0;
      return l > d ? l : d;
    }, 0);
    s.forEach((l) => {
      let u = e.node(l);
      o === "top" ? u.y = i + u.height / 2 : o === "bottom" ? u.y = i + a - u.height / 2 : u.y = i + a / 2;
    }), i += a + r;
  });
}
var xn = /* @__PURE__ */ new WeakMap();
function Oe(e, n = {}) {
  return In(e, q, n), e;
}
function _n(e, n, t) {
  let r = n;
  for (; r !== void 0; ) {
    let o = e.parent(r);
    if (o === t) return r;
    r = o;
  }
}
function In(e, n, t) {
  var y;
  let r = e.nodes().filter((b) => e.children(b).length), o = {};
  r.forEach((b) => {
    let p = e.node(b);
    if (p && p.rankdir) {
      let E = new T({ multigraph: true, compound: true });
      E.setGraph({ rankdir: p.rankdir });
      let w = e.children(b);
      w.forEach((G) => {
        let N = { ...e.node(G) };
        E.setNode(G, N);
        let C = e.parent(G);
        C && C !== b && w.includes(C) && E.setParent(G, C);
      });
      let k = /* @__PURE__ */ new Set();
      e.edges().forEach((G) => {
        let N = _n(e, G.v, b), C = _n(e, G.w, b);
        if (N === G.v && C === G.w) E.setEdge(G, { ...e.edge(G) });
        else if (N && C && N !== C) {
          let B = `${N}\0${C}`;
          k.has(B) || (k.add(B), E.setEdge(N, C, { ...e.edge(G) }));
        }
      }), In(E, n, t);
      let _ = Rn(E);
      Cn(_, n, t, null), Tn(E, _);
      let O = 1 / 0, j = 1 / 0, R = -1 / 0, I = -1 / 0;
      E.nodes().forEach((G) => {
        if (G === b) return;
        let N = E.node(G);
        N && typeof N.x == "number" && typeof N.y == "number" && typeof N.width == "number" && typeof N.height == "number" && (O = Math.min(O, N.x - N.width / 2), R = Math.max(R, N.x + N.width / 2), j = Math.min(j, N.y - N.height / 2), I = Math.max(I, N.y + N.height / 2));
      }), (!isFinite(O) || !isFinite(j) || !isFinite(R) || !isFinite(I)) && (O = j = 0, R = I = 0);
      let v = R - O, x = I - j;
      o[b] = { minX: O, minY: j, maxX: R, maxY: I, width: v, height: x, offsetX: O, offsetY: j }, p._dagreClusterSubgraph = E;
    }
  });
  let i = [], s = (b) => {
    let p = [], E = (e.children(b) || []).filter((w) => w !== b);
    for (; E.length > 0; ) {
      let w = E.shift();
      p.push(w), (e.children(w) || []).filter((k) => k !== w).forEach((k) => E.push(k));
    }
    return p;
  }, a = /* @__PURE__ */ new Map();
  r.forEach((b) => {
    let p = e.node(b);
    p && p.rankdir && o[b] && a.set(b, (e.children(b) || []).filter((E) => E !== b));
  });
  let l = new Set([...a.values()].flat()), u = /* @__PURE__ */ new Map();
  a.forEach((b, p) => {
    l.has(p) || u.set(p, s(p));
  });
  let d = new Set([...u.values()].flat()), c = (b) => {
    for (let [p, E] of u) if (E.includes(b)) return p;
    return b;
  }, f = [];
  e.edges().forEach((b) => {
    (d.has(b.v) || d.has(b.w)) && f.push({ edge: b, label: e.edge(b) });
  });
  let h2 = /* @__PURE__ */ new Map();
  d.forEach((b) => {
    let p = e.parent(b);
    h2.set(b, typeof p == "string" ? p : void 0);
  }), u.forEach((b, p) => {
    let E = e.node(p), w = [];
    b.forEach((O) => {
      let j = e.node(O);
      j && (w.push({ id: O, node: j, parent: h2.get(O) }), e.removeNode(O));
    });
    let k = f.filter(({ edge: O }) => b.includes(O.v) || b.includes(O.w)), _ = o[p];
    E && (i.push({ clusterId: p, subgraph: E._dagreClusterSubgraph, bounds: _, children: b, removedNodes: w, removedEdges: k }), E.width = _.width, E.height = _.height);
  });
  let g = /* @__PURE__ */ new Set();
  f.forEach(({ edge: b, label: p }) => {
    let E = c(b.v), w = c(b.w);
    if (E !== w && e.hasNode(E) && e.hasNode(w)) {
      let k = `${E}\0${w}`;
      g.has(k) || (g.add(k), e.setEdge(E, w, { ...p, width: 0, height: 0 }));
    }
  });
  let m = Rn(e), L = Cn(m, n, t, (y = xn.get(e)) != null ? y : null);
  xn.set(e, L), Tn(e, m), g.forEach((b) => {
    let p = b.indexOf("\0"), E = b.slice(0, p), w = b.slice(p + 1);
    e.hasEdge(E, w) && e.removeEdge(E, w);
  }), i.forEach(({ clusterId: b, subgraph: p, bounds: E, removedNodes: w, removedEdges: k }) => {
    var v, x;
    let _ = e.node(b), O = (v = _ == null ? void 0 : _.x) != null ? v : 0, j = (x = _ == null ? void 0 : _.y) != null ? x : 0, R = (E.minX + E.maxX) / 2, I = (E.minY + E.maxY) / 2;
    w.forEach(({ id: G, node: N, parent: C }) => {
      e.setNode(G, N), C !== void 0 && e.setParent(G, C);
    }), k.forEach(({ edge: G, label: N }) => {
      e.setEdge(G, N);
    }), p.nodes().forEach((G) => {
      if (G === b) return;
      let N = p.node(G), C = e.node(G);
      C && N && typeof N.x == "number" && typeof N.y == "number" && (C.x = O + (N.x - R), C.y = j + (N.y - I));
    }), On(e, p, O - R, j - I), delete _._dagreClusterSubgraph;
  }), r.forEach((b) => {
    var w, k;
    let p = e.node(b), E = o[b];
    if (p && p.rankdir && p._dagreClusterSubgraph && E) {
      let _ = p._dagreClusterSubgraph, O = (w = p.x) != null ? w : 0, j = (k = p.y) != null ? k : 0, R = (E.minX + E.maxX) / 2, I = (E.minY + E.maxY) / 2;
      _.nodes().forEach((v) => {
        if (v === b) return;
        let x = _.node(v), G = e.node(v);
        if (G && x && typeof x.x == "number" && typeof x.y == "number") {
          let N = x.x - R, C = x.y - I;
          G.x = O + N, G.y = j + C;
        }
      }), On(e, _, O - R, j - I), delete p._dagreClusterSubgraph;
    }
  });
}
function On(e, n, t, r) {
  n.edges().forEach((o) => {
    if (!e.hasEdge(o)) return;
    let i = n.edge(o), s = e.edge(o);
    s.points = i.points.map((a) => ({ x: a.x + t, y: a.y + r })), Object.hasOwn(i, "x") && (s.x = i.x + t, s.y = i.y + r);
  });
}
function Cn(e, n, t, r = null) {
  var l, u;
  let o = (t == null ? void 0 : t.useDynamic) !== false, i = o && (l = r == null ? void 0 : r.graph) != null ? l : null, s = o && (u = r == null ? void 0 : r.rawNodes) != null ? u : null;
  n("    makeSpaceForEdgeLabels", () => br(e)), n("    removeSelfEdges", () => Gr(e)), n("    acyclic", () => Ue(e, i)), n("    nestingGraph.run", () => un(e)), n("    rank", () => dn(Z(e))), n("    injectEdgeLabelProxies", () => gr(e)), n("    removeEmptyRanks", () => We(e)), n("    nestingGraph.cleanup", () => fn(e)), n("    normalizeRanks", () => Be(e)), n("    assignRankMinMax", () => pr(e)), n("    removeEdgeLabelProxies", () => mr(e)), n("    normalize.run", () => Ke(e)), n("    parentDummyChains", () => ln(e)), n("    addBorderSegments", () => bn(e)), n("    order", () => re(e, t, s)), n("    insertSelfEdges", () => vr(e)), n("    adjustCoordinateSystem", () => pn(e)), n("    position", () => kn(e, t.corePath)), n("    positionSelfEdges", () => kr(e));
  let a = JSON.parse(JSON.stringify(e._nodes));
  return n("    removeBorderNodes", () => Nr(e)), n("    normalize.undo", () => Qe(e)), n("    fixupEdgeLabelCoords", () => yr(e)), n("    undoCoordinateSystem", () => mn(e)), n("    translateGraph", () => Er(e)), n("    assignNodeIntersects", () => Lr(e)), n("    reversePoints", () => wr(e)), n("    acyclic.undo", () => Je(e)), { graph: e, rawNodes: a };
}
function Tn(e, n) {
  e.nodes().forEach((t) => {
    let r = e.node(t), o = n.node(t);
    r && (r.x = o.x, r.y = o.y, r.order = o.order, r.rank = o.rank, n.children(t).length && (r.width = o.width, r.height = o.height));
  }), e.edges().forEach((t) => {
    let r = e.edge(t), o = n.edge(t);
    r.points = o.points, Object.hasOwn(o, "x") && (r.x = o.x, r.y = o.y);
  }), e.graph().width = n.graph().width, e.graph().height = n.graph().height;
}
var ar = ["nodesep", "edgesep", "ranksep", "marginx", "marginy"];
var dr = { ranksep: 50, edgesep: 20, nodesep: 50, rankdir: "TB", rankalign: "center" };
var lr = ["acyclicer", "ranker", "rankdir", "align", "rankalign"];
var ur = ["width", "height", "rank"];
var jn = { width: 0, height: 0 };
var cr = ["minlen", "weight", "width", "height", "labeloffset"];
var fr = { minlen: 1, weight: 1, width: 0, height: 0, labeloffset: 10, labelpos: "r" };
var hr = ["labelpos"];
function Rn(e) {
  let n = new T({ multigraph: true, compound: true }), t = _e(e.graph());
  return n.setGraph(Object.assign({}, dr, xe(t, ar), W(t, lr))), e.nodes().forEach((r) => {
    let o = _e(e.node(r)), i = xe(o, ur);
    Object.keys(jn).forEach((a) => {
      i[a] === void 0 && (i[a] = jn[a]);
    }), n.setNode(r, i);
    let s = e.parent(r);
    s !== void 0 && n.setParent(r, s);
  }), e.edges().forEach((r) => {
    let o = _e(e.edge(r));
    n.setEdge(r, Object.assign({}, fr, xe(o, cr), W(o, hr)));
  }), n;
}
function br(e) {
  let n = e.graph();
  n.ranksep /= 2, e.edges().forEach((t) => {
    var o;
    let r = e.edge(t);
    r.minlen *= 2, ((o = r.labelpos) != null ? o : "r").toLowerCase() !== "c" && (n.rankdir === "TB" || n.rankdir === "BT" ? r.width += r.labeloffset : r.height += r.labeloffset);
  });
}
function gr(e) {
  e.edges().forEach((n) => {
    let t = e.edge(n);
    if (t.width && t.height) {
      let r = e.node(n.v), i = { rank: (e.node(n.w).rank - r.rank) / 2 + r.rank, e: n };
      M(e, "edge-proxy", i, "_ep");
    }
  });
}
function pr(e) {
  let n = 0;
  e.nodes().forEach((t) => {
    let r = e.node(t);
    r.borderTop && (r.minRank = e.node(r.borderTop).rank, r.maxRank = e.node(r.borderBottom).rank, n = Math.max(n, r.maxRank));
  }), e.graph().maxRank = n;
}
function mr(e) {
  e.nodes().forEach((n) => {
    let t = e.node(n);
    if (t.dummy === "edge-proxy") {
      let r = t;
      e.edge(r.e).labelRank = t.rank, e.removeNode(n);
    }
  });
}
function Er(e) {
  let n = Number.POSITIVE_INFINITY, t = 0, r = Number.POSITIVE_INFINITY, o = 0, i = e.graph(), s = i.marginx || 0, a = i.marginy || 0;
  function l(u) {
    let d = u.x, c = u.y, f = u.width, h2 = u.height;
    n = Math.min(n, d - f / 2), t = Math.max(t, d + f / 2), r = Math.min(r, c - h2 / 2), o = Math.max(o, c + h2 / 2);
  }
  e.nodes().forEach((u) => l(e.node(u))), e.edges().forEach((u) => {
    let d = e.edge(u);
    Object.hasOwn(d, "x") && l(d);
  }), n -= s, r -= a, e.nodes().forEach((u) => {
    let d = e.node(u);
    d.x -= n, d.y -= r;
  }), e.edges().forEach((u) => {
    let d = e.edge(u);
    d.points.forEach((c) => {
      c.x -= n, c.y -= r;
    }), Object.hasOwn(d, "x") && (d.x -= n), Object.hasOwn(d, "y") && (d.y -= r);
  }), i.width = t - n + s, i.height = o - r + a;
}
function Lr(e) {
  e.edges().forEach((n) => {
    if (n.v === n.w) return;
    let t = e.edge(n), r = e.node(n.v), o = e.node(n.w), i, s;
    t.points ? (i = t.points[0], s = t.points[t.points.length - 1]) : (t.points = [], i = o, s = r), t.points.unshift(se(r, i)), t.points.push(se(o, s));
  });
}
function yr(e) {
  e.edges().forEach((n) => {
    let t = e.edge(n);
    if (Object.hasOwn(t, "x")) switch ((t.labelpos === "l" || t.labelpos === "r") && (t.width -= t.labeloffset), t.labelpos) {
      case "l":
        t.x -= t.width / 2 + t.labeloffset;
        break;
      case "r":
        t.x += t.width / 2 + t.labeloffset;
        break;
    }
  });
}
function wr(e) {
  e.edges().forEach((n) => {
    let t = e.edge(n);
    t.reversed && t.points.reverse();
  });
}
function Nr(e) {
  e.nodes().forEach((n) => {
    if (e.children(n).length) {
      let t = e.node(n), r = e.node(t.borderTop), o = e.node(t.borderBottom), i = e.node(t.borderLeft[t.borderLeft.length - 1]), s = e.node(t.borderRight[t.borderRight.length - 1]);
      t.width = Math.abs(s.x - i.x), t.height = Math.abs(o.y - r.y), t.x = i.x + t.width / 2, t.y = r.y + t.height / 2;
    }
  }), e.nodes().forEach((n) => {
    e.node(n).dummy === "border" && e.removeNode(n);
  });
}
function Gr(e) {
  e.edges().forEach((n) => {
    if (n.v === n.w) {
      let t = e.node(n.v);
      t.selfEdges || (t.selfEdges = []), t.selfEdges.push({ e: n, label: e.edge(n) }), e.removeEdge(n);
    }
  });
}
function vr(e) {
  P(e).forEach((t) => {
    let r = 0;
    t.forEach((o, i) => {
      let s = e.node(o);
      typeof s.rank != "number" && (s.rank = 0), s.order = i + r, (s.selfEdges || []).forEach((a) => {
        M(e, "selfedge", { width: a.label.width, height: a.label.height, rank: s.rank, order: i + ++r, e: a.e, edgeLabel: a.label }, "_se"), (!Array.isArray(a.label.points) || a.label.points.length !== 7) && (a.label.points = [{ x: 0, y: -10 }, { x: 0, y: -10 }, { x: 0, y: 0 }, { x: 0, y: 10 }, { x: 0, y: 10 }, { x: 0, y: 0 }, { x: 0, y: 0 }]);
      }), delete s.selfEdges;
    });
  });
}
function kr(e) {
  e.nodes().forEach((n) => {
    let t = e.node(n), r = (o) => typeof o == "number" && isFinite(o);
    if (t.dummy === "selfedge") {
      let o = t, i = e.node(o.e.v), s = r(i == null ? void 0 : i.x) ? i.x : 0, a = r(i == null ? void 0 : i.y) ? i.y : 0, l = r(i == null ? void 0 : i.width) ? i.width : 0, u = r(i == null ? void 0 : i.height) ? i.height : 0, d = r(t.x) ? t.x : s, c = r(t.y) ? t.y : a, f = l / 2, h2 = u / 2;
      o.edgeLabel.points = [{ x: d + f, y: c - h2 }, { x: d + f, y: c - h2 }, { x: d, y: c }, { x: d - f, y: c + h2 }, { x: d - f, y: c + h2 }, { x: d, y: c }, { x: d, y: c }], o.edgeLabel.x = d, o.edgeLabel.y = c, e.setEdge(o.e, o.edgeLabel), e.removeNode(n);
    } else t && Array.isArray(t.selfEdges) && t.selfEdges.forEach((o) => {
      if (!Array.isArray(o.label.points) || o.label.points.length !== 7) {
        let i = r(t.x) ? t.x : 0, s = r(t.y) ? t.y : 0, a = r(t.width) ? t.width : 0, l = r(t.height) ? t.height : 0, u = a / 2, d = l / 2;
        o.label.points = [{ x: i + u, y: s - d }, { x: i + u, y: s - d }, { x: i, y: s }, { x: i - u, y: s + d }, { x: i - u, y: s + d }, { x: i, y: s }, { x: i, y: s }];
      }
    });
  });
}
function xe(e, n) {
  return X(W(e, n), Number);
}
function _e(e) {
  let n = {};
  return e && Object.entries(e).forEach(([t, r]) => {
    typeof t == "string" && (t = t.toLowerCase()), n[t] = r;
  }), n;
}

// src/layout.js
var NODE_W = 168;
var NODE_H = 40;
var GROUP_NODE_W = 188;
var GROUP_NODE_H = 44;
var GAP = 28;
var GROUP_PAD_TOP = 18;
var HUB_DEGREE = 24;
var HUB_MIN_NODES = 100;
var GROUP_PAD = 10;
function visibleGraph(data, groupBy, collapsed) {
  const groups = /* @__PURE__ */ new Map();
  for (const g of groupBy !== "none" && data.groups[groupBy] || []) groups.set(g.id, g);
  const chain = (gid) => {
    const out = [];
    for (let g = gid; g && groups.has(g); g = groups.get(g).parent) out.unshift(g);
    return out;
  };
  const chains = /* @__PURE__ */ new Map();
  const chainOf = (gid) => {
    if (!gid) return [];
    if (!chains.has(gid)) chains.set(gid, chain(gid));
    return chains.get(gid);
  };
  const owner = /* @__PURE__ */ new Map();
  const members = /* @__PURE__ */ new Map();
  const parent = /* @__PURE__ */ new Map();
  const openGroups = /* @__PURE__ */ new Set();
  for (const node of data.nodes) {
    const ch = chainOf(groupBy === "none" ? null : node.groups[groupBy]);
    const cut = ch.findIndex((g) => collapsed.has(g));
    if (cut >= 0) {
      const gid = ch[cut];
      owner.set(node.id, gid);
      if (!members.has(gid)) {
        members.set(gid, []);
        parent.set(gid, cut > 0 ? ch[cut - 1] : null);
      }
      members.get(gid).push(node.id);
      ch.slice(0, cut).forEach((g) => openGroups.add(g));
    } else {
      owner.set(node.id, node.id);
      parent.set(node.id, ch.length ? ch[ch.length - 1] : null);
      ch.forEach((g) => openGroups.add(g));
    }
  }
  const seen = /* @__PURE__ */ new Set();
  const edges = [];
  const add = (list, control) => {
    for (const [u, v] of list || []) {
      const a = owner.get(u);
      const b = owner.get(v);
      if (a === void 0 || b === void 0 || a === b) continue;
      const key = a + "\0" + b;
      if (!seen.has(key)) {
        seen.add(key);
        edges.push([a, b, control]);
      }
    }
  };
  add(data.edges, false);
  add(data.control_edges, true);
  const groupParent = new Map([...openGroups].map((g) => [g, groups.get(g).parent]));
  return { owner, members, parent, edges, groups, openGroups, groupParent, chainOf };
}
function components(ids, edges, topOf) {
  const up = new Map(ids.map((id) => [id, id]));
  const find = (x) => {
    while (up.get(x) !== x) {
      up.set(x, up.get(up.get(x)));
      x = up.get(x);
    }
    return x;
  };
  const join = (a, b) => up.set(find(a), find(b));
  for (const [a, b] of edges) join(a, b);
  const byTop = /* @__PURE__ */ new Map();
  for (const id of ids) {
    const top = topOf(id);
    if (top === null) continue;
    if (byTop.has(top)) join(id, byTop.get(top));
    else byTop.set(top, id);
  }
  const out = /* @__PURE__ */ new Map();
  for (const id of ids) {
    const root = find(id);
    if (!out.has(root)) out.set(root, []);
    out.get(root).push(id);
  }
  return [...out.values()];
}
function layoutComponent(items, groupIds, edges, parentOf, sizeOf) {
  const g = new ie.Graph({ compound: true });
  g.setGraph({ rankdir: "TB", nodesep: 18, ranksep: 34, marginx: 6, marginy: 6 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const gid of groupIds) g.setNode(gid, {});
  for (const gid of groupIds) {
    const p = parentOf(gid);
    if (p) g.setParent(gid, p);
  }
  for (const id of items) {
    const [w, h2] = sizeOf(id);
    g.setNode(id, { width: w, height: h2 });
    const p = parentOf(id);
    if (p) g.setParent(id, p);
  }
  for (const [a, b] of edges) g.setEdge(a, b);
  Oe(g);
  const place = (id) => {
    const n = g.node(id);
    return { x: n.x, y: n.y, w: n.width, h: n.height };
  };
  return {
    items: items.map(place),
    groups: groupIds.map(place),
    edges: edges.map(([a, b]) => g.edge(a, b).points.map((p) => ({ x: p.x, y: p.y })))
  };
}
function layoutGraph(data, groupBy, collapsed, aspect = 1.8, previous = null, running = false) {
  const vis = visibleGraph(data, groupBy, collapsed);
  const ids = [...new Set(vis.owner.values())];
  const isGroup = (id) => vis.members.has(id);
  const parentOf = (id) => vis.parent.has(id) ? vis.parent.get(id) : vis.groupParent.get(id);
  const topOf = (id) => {
    const p = parentOf(id);
    const ch = p ? vis.chainOf(p) : isGroup(id) ? vis.chainOf(id) : [];
    return ch.length ? ch[0] : null;
  };
  const sizeOf = (id) => isGroup(id) ? [GROUP_NODE_W, GROUP_NODE_H] : [NODE_W, NODE_H];
  const { local, cross } = splitHubEdges(vis.edges, ids.length);
  const outEdges = /* @__PURE__ */ new Map();
  for (const e of local) {
    if (!outEdges.has(e[0])) outEdges.set(e[0], []);
    outEdges.get(e[0]).push(e);
  }
  const cache = /* @__PURE__ */ new Map();
  const placed = [];
  for (const comp of components(ids, local, topOf)) {
    const index = new Map(comp.map((id, i) => [id, i]));
    const groupIds = [];
    const groupIndex = /* @__PURE__ */ new Map();
    for (const id of comp) {
      for (let p = parentOf(id); p && !groupIndex.has(p); p = vis.groupParent.get(p)) {
        groupIndex.set(p, -1);
        groupIds.push(p);
      }
    }
    groupIds.reverse();
    groupIds.forEach((gid, i) => groupIndex.set(gid, i));
    const edges = comp.flatMap((id) => outEdges.get(id) || []);
    const localParent = (id) => {
      const p = parentOf(id);
      return p ? "g" + groupIndex.get(p) : "";
    };
    const signature = [
      comp.map((id) => `${isGroup(id) ? "G" : "n"}${localParent(id)}`).join(","),
      groupIds.map((gid) => localParent(gid)).join(","),
      edges.map(([a, b]) => `${index.get(a)}>${index.get(b)}`).join(",")
    ].join("|");
    let local2 = cache.get(signature);
    if (!local2) {
      local2 = layoutComponent(comp, groupIds, edges, parentOf, sizeOf);
      cache.set(signature, local2);
    }
    placed.push({ comp, groupIds, edges, local: local2 });
  }
  let blocks = placed.map((entry) => toBlock(entry, vis, isGroup));
  if (data.recorded && running) {
    blocks = blocks.map((b) => ({ ...b, groups: groupBoxes(b.groups, b.nodes, vis, parentOf) }));
  }
  const growing = Boolean(previous) && ids.some((id) => previous.nodes.has(id));
  if (growing) {
    blocks = blocks.map((b) => b.nodes.some((n) => previous.nodes.has(n.id)) ? pinLayout(b, previous.nodes, vis, parentOf, aspect) : b);
  }
  const items = ((data.groups || {}).module || []).filter((g) => g.kind === "item").length;
  const slots = placed.map(({ comp }, i) => {
    const top = topOf(comp[0]);
    return top && top.startsWith("item:") ? Number(top.slice(5)) : i;
  });
  const count = Math.max(items, blocks.length);
  const grid = items > 0 && data.recorded && (growing || running);
  const cols = grid ? previous?.cols || Math.min(count, Math.ceil(Math.sqrt(count * aspect * 3))) : 0;
  const laid = growing && blocks.length === 1 ? { ...blocks[0], bounds: boundsOf(blocks[0].nodes, blocks[0].groups) } : arrange(blocks, aspect, cols, items ? slots : null);
  laid.cols = cols;
  const at2 = new Map(laid.nodes.map((n) => [n.id, n]));
  for (const [a, b, control] of cross) {
    const u = at2.get(a);
    const v = at2.get(b);
    const bend = Math.max(24, Math.abs(v.y - u.y) / 3);
    const points = [
      { x: u.x, y: u.y + u.h / 2 },
      { x: u.x, y: u.y + u.h / 2 + bend },
      { x: v.x, y: v.y - v.h / 2 - bend },
      { x: v.x, y: v.y - v.h / 2 }
    ];
    laid.edges.push({ from: a, to: b, points, hub: true, control });
  }
  laid.width = laid.bounds.x1 - laid.bounds.x0;
  laid.height = laid.bounds.y1 - laid.bounds.y0;
  return laid;
}
function toBlock({ comp, groupIds, edges, local }, vis, isGroup) {
  const nodes = comp.map((id, j) => {
    const r = local.items[j];
    const node = { id, x: r.x, y: r.y, w: r.w, h: r.h };
    if (isGroup(id)) node.group = id;
    return node;
  });
  const groups = groupIds.map((gid, j) => {
    const r = local.groups[j];
    return { id: gid, x: r.x, y: r.y - GROUP_PAD_TOP / 2, w: r.w, h: r.h + GROUP_PAD_TOP, depth: vis.chainOf(gid).length };
  });
  const placedEdges = edges.map(([a, b, control], j) => ({ from: a, to: b, control, points: local.edges[j] }));
  return { nodes, groups, edges: placedEdges };
}
var overlaps = (a, b) => Math.abs(a.x - b.x) < (a.w + b.w) / 2 + 16 && Math.abs(a.y - b.y) < (a.h + b.h) / 2 + 12;
var Buckets = class {
  constructor(rects) {
    this.cells = /* @__PURE__ */ new Map();
    this.size = 240;
    rects.forEach((r) => this.add(r));
  }
  *keys(r) {
    const s = this.size;
    for (let i = Math.floor((r.x - r.w / 2 - 20) / s); i <= Math.floor((r.x + r.w / 2 + 20) / s); i++) {
      for (let j = Math.floor((r.y - r.h / 2 - 20) / s); j <= Math.floor((r.y + r.h / 2 + 20) / s); j++) yield `${i},${j}`;
    }
  }
  add(r) {
    for (const k of this.keys(r)) {
      if (!this.cells.has(k)) this.cells.set(k, []);
      this.cells.get(k).push(r);
    }
  }
  hit(r) {
    for (const k of this.keys(r)) for (const o of this.cells.get(k) || []) if (overlaps(o, r)) return o;
    return null;
  }
};
function pinLayout(laid, previous, vis, parentOf, aspect) {
  const fresh = new Map(laid.nodes.map((n) => [n.id, n]));
  const at2 = /* @__PURE__ */ new Map();
  const parents = /* @__PURE__ */ new Map();
  for (const [a, b] of laid.edges.map((e) => [e.from, e.to])) {
    if (!parents.has(b)) parents.set(b, []);
    parents.get(b).push(a);
  }
  const shift = (id) => ({ dx: at2.get(id).x - fresh.get(id).x, dy: at2.get(id).y - fresh.get(id).y });
  for (const n of laid.nodes) {
    const old = previous.get(n.id);
    if (old) at2.set(n.id, { ...n, x: old.x, y: old.y });
  }
  const placedBounds = () => boundsOf([...at2.values()], []);
  const news = laid.nodes.filter((n) => !at2.has(n.id));
  const looseIds = /* @__PURE__ */ new Set();
  for (const n of news) {
    if ((parents.get(n.id) || []).every((p) => looseIds.has(p))) looseIds.add(n.id);
  }
  const loose = news.filter((n) => looseIds.has(n.id));
  if (loose.length) {
    const b = placedBounds();
    const block = boundsOf(loose, []);
    const wide = (b.x1 - b.x0 + GAP + (block.x1 - block.x0)) / Math.max(b.y1 - b.y0, block.y1 - block.y0) > aspect;
    const dx = wide ? b.x0 - block.x0 : b.x1 + GAP - block.x0;
    const dy = wide ? b.y1 + GAP - block.y0 : b.y0 - block.y0;
    for (const n of loose) at2.set(n.id, { ...n, x: n.x + dx, y: n.y + dy });
  }
  const grid = new Buckets([...at2.values()]);
  for (const n of news) {
    if (at2.has(n.id)) continue;
    const placed = (parents.get(n.id) || []).filter((p) => at2.has(p));
    let dx = 0;
    let dy = 0;
    for (const p of placed) {
      const s = shift(p);
      dx += s.dx / placed.length;
      dy += s.dy / placed.length;
    }
    const node = { ...n, x: n.x + dx, y: n.y + dy };
    for (let tries = 0; tries < 200; tries++) {
      const hit = grid.hit(node);
      if (!hit) break;
      node.x = hit.x + (hit.w + node.w) / 2 + 18;
    }
    at2.set(n.id, node);
    grid.add(node);
  }
  const nodes = laid.nodes.map((n) => at2.get(n.id));
  const groups = groupBoxes(laid.groups, nodes, vis, parentOf);
  const edges = laid.edges.map((e) => {
    const a = shift(e.from);
    const b = shift(e.to);
    if (Math.abs(a.dx - b.dx) < 0.5 && Math.abs(a.dy - b.dy) < 0.5) {
      return { ...e, points: e.points.map((p) => ({ x: p.x + a.dx, y: p.y + a.dy })) };
    }
    return { ...e, points: curve(at2.get(e.from), at2.get(e.to)) };
  });
  const bounds = boundsOf(nodes, groups);
  return { nodes, groups, edges, width: bounds.x1 - bounds.x0, height: bounds.y1 - bounds.y0, bounds };
}
function groupBoxes(freshGroups, nodes, vis, parentOf) {
  const members = /* @__PURE__ */ new Map();
  const push = (gid, rect) => {
    if (!members.has(gid)) members.set(gid, []);
    members.get(gid).push(rect);
  };
  for (const n of nodes) {
    const p = parentOf(n.id);
    if (p) push(p, n);
  }
  const order = [...freshGroups].sort((a, b) => b.depth - a.depth);
  const out = [];
  for (const g of order) {
    const list = members.get(g.id) || [];
    if (!list.length) continue;
    const b = boundsOf(list, []);
    const box = {
      id: g.id,
      depth: g.depth,
      x: (b.x0 + b.x1) / 2,
      y: (b.y0 - GROUP_PAD - GROUP_PAD_TOP + b.y1 + GROUP_PAD) / 2,
      w: b.x1 - b.x0 + 2 * GROUP_PAD,
      h: b.y1 - b.y0 + 2 * GROUP_PAD + GROUP_PAD_TOP
    };
    out.push(box);
    const up = vis.groupParent.get(g.id);
    if (up) push(up, box);
  }
  return out.sort((a, b) => a.depth - b.depth);
}
function boundsOf(nodes, groups) {
  const b = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
  for (const r of [...nodes, ...groups]) {
    b.x0 = Math.min(b.x0, r.x - r.w / 2);
    b.x1 = Math.max(b.x1, r.x + r.w / 2);
    b.y0 = Math.min(b.y0, r.y - r.h / 2);
    b.y1 = Math.max(b.y1, r.y + r.h / 2);
  }
  return b.x0 === Infinity ? { x0: 0, y0: 0, x1: 0, y1: 0 } : b;
}
function curve(u, v) {
  const bend = Math.max(18, Math.abs(v.y - v.h / 2 - (u.y + u.h / 2)) / 3);
  return [
    { x: u.x, y: u.y + u.h / 2 },
    { x: u.x, y: u.y + u.h / 2 + bend },
    { x: v.x, y: v.y - v.h / 2 - bend },
    { x: v.x, y: v.y - v.h / 2 }
  ];
}
function splitHubEdges(edges, visibleCount) {
  if (visibleCount <= HUB_MIN_NODES) return { local: edges, cross: [] };
  const outs = /* @__PURE__ */ new Map();
  const ins = /* @__PURE__ */ new Map();
  for (const [a, b] of edges) {
    outs.set(a, (outs.get(a) || 0) + 1);
    ins.set(b, (ins.get(b) || 0) + 1);
  }
  const local = [];
  const cross = [];
  for (const e of edges) {
    const hub = outs.get(e[0]) > HUB_DEGREE || ins.get(e[1]) > HUB_DEGREE;
    (hub ? cross : local).push(e);
  }
  return { local, cross };
}
function arrange(blocks, aspect, cols, slots = null) {
  const boxes = blocks.map((b) => boundsOf(b.nodes, b.groups));
  const spots = cols ? gridSpots(boxes, cols, slots || boxes.map((_, i) => i)) : shelfSpots(boxes, aspect);
  const out = { nodes: [], groups: [], edges: [] };
  blocks.forEach((block, i) => {
    const dx = spots[i].x - boxes[i].x0;
    const dy = spots[i].y - boxes[i].y0;
    const move = (r) => ({ ...r, x: r.x + dx, y: r.y + dy });
    out.nodes.push(...block.nodes.map(move));
    out.groups.push(...block.groups.map(move));
    out.edges.push(...block.edges.map((e) => ({ ...e, points: e.points.map(move) })));
  });
  out.groups.sort((a, b) => a.depth - b.depth);
  out.bounds = boundsOf(out.nodes, out.groups);
  return out;
}
function shelfSpots(boxes, aspect) {
  const size = boxes.map((b) => ({ w: b.x1 - b.x0, h: b.y1 - b.y0 }));
  const area = size.reduce((s, b) => s + (b.w + GAP) * (b.h + GAP), 0);
  const rowWidth = Math.max(Math.sqrt(area * aspect), ...size.map((b) => b.w));
  const spots = [];
  let x = 0;
  let y = 0;
  let rowH = 0;
  for (const b of size) {
    if (x > 0 && x + b.w > rowWidth) {
      x = 0;
      y += rowH + GAP;
      rowH = 0;
    }
    spots.push({ x, y });
    x += b.w + GAP;
    rowH = Math.max(rowH, b.h);
  }
  return spots;
}
function gridSpots(boxes, cols, slots) {
  const colW = new Array(cols).fill(NODE_W + 2 * GROUP_PAD);
  const rowH = new Array(Math.ceil((Math.max(-1, ...slots) + 1) / cols)).fill(0);
  boxes.forEach((b, i) => {
    const [c, r] = [slots[i] % cols, Math.floor(slots[i] / cols)];
    colW[c] = Math.max(colW[c], b.x1 - b.x0);
    rowH[r] = Math.max(rowH[r], b.y1 - b.y0);
  });
  const xs = colW.map((_, c) => colW.slice(0, c).reduce((s, w) => s + w + GAP, 0));
  const ys = rowH.map((_, r) => rowH.slice(0, r).reduce((s, h2) => s + h2 + GAP, 0));
  return slots.map((slot) => ({ x: xs[slot % cols], y: ys[Math.floor(slot / cols)] }));
}
function edgePath(points) {
  const p = points;
  if (p.length < 3) return `M${p[0].x},${p[0].y}L${p[p.length - 1].x},${p[p.length - 1].y}`;
  let d = `M${p[0].x},${p[0].y}`;
  let [x0, y0, x1, y1] = [p[0].x, p[0].y, p[0].x, p[0].y];
  const curve2 = (x, y) => `C${(2 * x0 + x1) / 3},${(2 * y0 + y1) / 3},${(x0 + 2 * x1) / 3},${(y0 + 2 * y1) / 3},${(x0 + 4 * x1 + x) / 6},${(y0 + 4 * y1 + y) / 6}`;
  p.slice(1).forEach(({ x, y }, i) => {
    if (i === 1) d += `L${(5 * x0 + x1) / 6},${(5 * y0 + y1) / 6}`;
    if (i >= 1) d += curve2(x, y);
    [x0, y0, x1, y1] = [x1, y1, x, y];
  });
  return d + curve2(x1, y1) + `L${x1},${y1}`;
}

// src/whatif.js
var EDITABLE_KINDS = /* @__PURE__ */ new Set(["llm", "op", "module", "input"]);
function label(text, ...extra) {
  return h("div", { class: "pl-role" }, text, ...extra);
}
function editorContent(form, draft, info, on2) {
  const running = info.status === "running";
  const area = (field, text, cls) => {
    const el = h("textarea", { class: `pl-edit ${cls}`, rows: 5, spellcheck: "false" });
    el.value = draft[field] ?? text;
    el.addEventListener("input", () => draft[field] = el.value);
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
      placeholder: "default"
    });
    temperature.value = draft.temperature ?? (form.temperature ?? "");
    temperature.addEventListener("input", () => draft.temperature = temperature.value);
    parts.push(label("Temperature"), temperature);
  }
  if (form.input !== null) {
    parts.push(label(form.input_label, form.input_kind === "json" ? " \u2014 JSON" : ""));
    parts.push(area("input", form.input, "pl-edit-input"));
  } else {
    parts.push(h("div", { class: "pl-note" }, "This node's input is not text or JSON, so it cannot be edited here."));
  }
  const run = () => {
    const edits = {};
    if (form.system_prompt !== null) edits.system_prompt = draft.system_prompt ?? form.system_prompt;
    if (form.input !== null) edits.input = draft.input ?? form.input;
    if (temperature && temperature.value !== "") edits.temperature = Number(temperature.value);
    on2.onRun(edits);
  };
  return h(
    "div",
    { class: "pl-editor" },
    h("div", { class: "pl-editor-head" }, "Edit & re-run"),
    ...parts,
    h(
      "div",
      { class: "pl-note" },
      "Runs this node and everything downstream again; every other node's output is reused. The edit applies to this re-run only until you adopt it."
    ),
    h(
      "div",
      { class: "pl-actions" },
      h("button", { class: "pl-btn pl-primary pl-run-edit", onclick: run, disabled: running }, running ? "Re-running\u2026" : "Re-run"),
      h("button", { class: "pl-btn pl-cancel-edit", onclick: on2.onCancel, disabled: running }, "Cancel")
    ),
    info.status === "error" && info.message ? pre(info.message, "pl-error pl-edit-error") : null
  );
}
function marked(runs) {
  return runs.map(
    ([op, text]) => op === "-" ? h("del", { class: "pl-del" }, text) : op === "+" ? h("ins", { class: "pl-ins" }, text) : text
  );
}
function diffSection(change) {
  return section(
    "Changed by the re-run",
    true,
    h(
      "div",
      { class: "pl-diff" },
      h("div", { class: "pl-diff-col" }, label("before"), pre(marked(change.before), "pl-diff-before")),
      h("div", { class: "pl-diff-col" }, label("after"), pre(marked(change.after), "pl-diff-after"))
    )
  );
}
function bannerContent(info, nameOf, on2) {
  if (!info.node || !info.changes) return [];
  const changed = info.changed || [];
  const edited = info.edited && info.edited.length ? ` (${info.edited.join(", ")} edited)` : " (no edits)";
  const chip = (id) => h("button", { class: "pl-chip", title: id, onclick: () => on2.onSelect(id) }, nameOf(id));
  const parts = [
    h("span", { class: "pl-whatif-title" }, "Re-run at ", chip(info.node), edited),
    h("span", {}, changed.length ? `${changed.length} changed:` : "no output changed"),
    ...changed.map(chip),
    h("span", { class: "pl-muted" }, `\xB7 ${(info.rerun || []).length} ran again, ${(info.reused || []).length} reused`)
  ];
  const adopt = info.adopt;
  if (adopt) {
    parts.push(
      h(
        "button",
        { class: "pl-btn pl-primary pl-adopt", disabled: adopt.done, onclick: () => on2.onAdopt(info.node) },
        adopt.done ? `Adopted into ${adopt.parameter}` : `Adopt into ${adopt.parameter}`
      )
    );
  }
  if (info.status === "error" && info.message) parts.push(h("span", { class: "pl-whatif-error" }, info.message));
  else if (info.message) parts.push(h("span", { class: "pl-muted pl-whatif-message" }, info.message));
  return parts;
}

// src/graph_view.js
var STATES = [
  "pending",
  "queued",
  "running",
  "retrying",
  "done",
  "cached",
  "failed",
  "skipped",
  "cancelled",
  "unused"
];
var FINISHED = /* @__PURE__ */ new Set(["done", "cached", "failed", "skipped", "cancelled", "unused"]);
var MIN_ZOOM = 0.02;
var MAX_ZOOM = 3;
var FAR_ZOOM = 0.45;
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
var LAYOUTS = /* @__PURE__ */ new Map();
var KEPT_LAYOUTS = 50;
var Explorer = class {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.details = { ...model.get("node_details") };
    this.states = {};
    this.view = { x: 0, y: 0, k: 1 };
    this.editing = null;
    this.forms = {};
    this.drafts = {};
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
      ["change:height", () => this.root.style.height = `${model.get("height")}px`],
      ["msg:custom", (msg) => this.onMessage(msg)]
    ];
    for (const [name, fn2] of this.listeners) model.on(name, fn2);
    this.onGraphData();
  }
  /** A new graph is laid out afresh; the same run's graph, grown, keeps its nodes in place. */
  onGraphData() {
    const data = this.model.get("graph_data") || {};
    const memo = data.serial ? LAYOUTS.get(data.serial) : void 0;
    if (!this.placed && memo && memo.key === this.layoutKey()) {
      Object.assign(this, { serial: memo.serial, placed: memo.placed, cols: memo.cols });
    }
    const grown = Boolean(data.serial) && data.serial === this.serial && Boolean(this.placed);
    this.serial = data.serial;
    this.rebuild(!grown, grown);
  }
  /** What a layout depends on besides the graph: the grouping and the collapsed groups. */
  layoutKey() {
    return `${this.model.get("group_by")}|${[...this.model.get("collapsed") || []].sort().join(",")}`;
  }
  destroy() {
    for (const [name, fn2] of this.listeners) this.model.off(name, fn2);
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
      if (mark) mark.textContent = edited ? "\u270E edited" : changed.has(id) ? "\u0394 changed" : "";
    }
  }
  renderBanner() {
    const nameOf = (id) => this.nodesById?.get(id)?.name || id;
    const parts = bannerContent(this.whatif(), nameOf, {
      onSelect: (id) => this.select(id),
      onAdopt: (id) => {
        this.model.send({ type: "adopt", node: id });
      }
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
          "Edit & re-run"
        )
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
      h("button", { class: "pl-close", title: "Close the editor", onclick: cancel }, "\xD7")
    );
    if (!answer) return [head, h("div", { class: "pl-note" }, "Loading the prompt\u2026")];
    if (answer.error) return [head, h("pre", { class: "pl-pre pl-error" }, answer.error)];
    this.drafts[id] = this.drafts[id] || {};
    const editor = editorContent(answer.form, this.drafts[id], this.whatif(), {
      onRun: (edits) => this.model.send({ type: "rerun", node: id, ...edits }),
      onCancel: cancel
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
        }
      },
      h("option", { value: "module" }, "group: module"),
      h("option", { value: "scope" }, "group: helper scope"),
      h("option", { value: "none" }, "no groups")
    );
    const button = (label2, title, fn2) => h("button", { class: "pl-btn", title, onclick: fn2 }, label2);
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
      button("\u2212", "Zoom out", () => this.zoomBy(1 / 1.25, void 0, void 0, true)),
      button("+", "Zoom in", () => this.zoomBy(1.25, void 0, void 0, true)),
      button("Fit", "Fit the graph to the view", () => {
        this.userMoved = false;
        this.fit();
      })
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
          svg("path", { d: "M0,0L10,5L0,10z", class: "pl-arrow" })
        )
      ),
      this.viewport
    );
    this.empty = h("div", { class: "pl-empty" }, "Waiting for a run\u2026");
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
      h("div", { class: "pl-footer" }, this.legend, this.note)
    );
    this.root.style.height = `${model.get("height")}px`;
    this.el.replaceChildren(this.root);
    this.bindPointer();
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
    this.groupsById = /* @__PURE__ */ new Map();
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
      LAYOUTS.delete(this.serial);
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
            (info?.kind === "iteration" ? "\u25BE \u21BB " : "\u25BE ") + clip(info ? info.label : g.id, Math.max(4, Math.floor(g.w / 7))),
            svg("title", {}, `${info ? info.label : g.id} (click to collapse)`)
          )
        )
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
          e.control ? svg("title", {}, `${this.nameOf(e.from)} \u2192 ${this.nameOf(e.to)}: control (called after its reply)`) : null
        )
      );
    }
    const nodeLayer = svg("g", { class: "pl-nodes" });
    this.nodeEls = /* @__PURE__ */ new Map();
    this.groupNodeEls = /* @__PURE__ */ new Map();
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
    const sub = node.target ? `${node.kind} \xB7 ${node.target}` : node.kind;
    const cls = `pl-node pl-kind-${node.kind}${node.output ? " pl-out" : ""}`;
    const el = svg(
      "g",
      { class: cls, "data-id": n.id, transform: `translate(${n.x - n.w / 2},${n.y - n.h / 2})` },
      svg("rect", { width: n.w, height: n.h, rx: node.kind === "input" ? n.h / 2 : 6 }),
      svg("text", { class: "pl-name", x: 10, y: 17 }, clip(node.name, 22)),
      svg("text", { class: "pl-sub", x: 10, y: 31 }, clip(sub, 26)),
      svg("text", { class: "pl-mark", x: n.w - 6, y: -4, "text-anchor": "end" }),
      svg("title", {}, [node.id, node.module_path, (node.scope || []).join(" / ")].filter(Boolean).join("\n"))
    );
    this.nodeEls.set(n.id, el);
    return el;
  }
  drawGroupNode(n) {
    const info = this.groupsById.get(n.group);
    const label2 = info ? info.label : n.group;
    const sub = svg("text", { class: "pl-sub", x: 10, y: 33 });
    const el = svg(
      "g",
      { class: "pl-node pl-collapsed", "data-group": n.group, transform: `translate(${n.x - n.w / 2},${n.y - n.h / 2})` },
      svg("rect", { width: n.w, height: n.h, rx: 10 }),
      svg("text", { class: "pl-name", x: 10, y: 18 }, "\u25B8 " + clip(label2, 22)),
      sub,
      svg("title", {}, `${label2} (click to expand)`)
    );
    this.groupNodeEls.set(n.group, { el, sub });
    return el;
  }
  updateStates() {
    const states = this.model.get("node_states") || {};
    const changed = /* @__PURE__ */ new Set();
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
    const members = /* @__PURE__ */ new Map();
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
      sub.textContent = `${list.length} nodes \xB7 ${done} finished`;
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
      ...STATES.filter((s) => counts[s] > 0 || !["skipped", "unused", "cached"].includes(s)).map(
        (s) => h("span", { class: "pl-legend-item", "data-state": s }, h("span", { class: `pl-swatch pl-state-${s}` }), `${s} ${counts[s]}`)
      ),
      ...this.hasControl ? [h("span", { class: "pl-legend-item pl-legend-control", title: "dashed: called after that reply was awaited (control), not fed its output" }, h("span", { class: "pl-swatch-control" }), "control edge")] : []
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
    this.status.textContent = parts.join(" \xB7 ");
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
      ...editing ? this.editorPanel(id, node) : inspectorContent(node, state, this.details[id] || {}, () => this.select(""), extras, (n) => this.nameOf(n))
    );
    this.panel.classList.toggle("pl-wide", editing || Boolean((this.whatif().changes || {})[id]));
    this.panel.hidden = false;
    const shown = `${id}${editing ? " editing" : ""}`;
    if (this.shown !== shown) this.panel.scrollTop = 0;
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
    const margin = 14;
    const [w, h2] = [b.x1 - b.x0, b.y1 - b.y0];
    const fitted = Math.min((rect.width - 2 * margin) / w, (rect.height - 2 * margin) / h2, 1.2);
    const k = Math.min(Math.max(fitted, MIN_ZOOM), MAX_ZOOM);
    this.view = { k, x: (rect.width - w * k) / 2 - b.x0 * k, y: (rect.height - h2 * k) / 2 - b.y0 * k };
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
    this.view = { k: k2, x: px - (px - x) * k2 / k, y: py - (py - y) * k2 / k };
    this.apply();
  }
  bindPointer() {
    let drag = null;
    this.canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.userMoved = true;
      const rect = this.stage.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 15e-4)), e.clientX - rect.left, e.clientY - rect.top);
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
      const target = (
        /** @type {Element} */
        e.target
      );
      const node = target.closest(".pl-node");
      if (node && node.dataset.id) return this.select(node.dataset.id);
      const group = target.closest("[data-group]");
      if (group && (node || target.closest(".pl-group-head"))) return this.toggleGroup(group.dataset.group);
    });
  }
};
var graph_view_default = {
  render({ model, el }) {
    const explorer = new Explorer(model, el);
    return () => explorer.destroy();
  }
};
export {
  graph_view_default as default
};
