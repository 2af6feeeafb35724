// Layered layout of the visible graph with dagre.
//
// Collapsed groups stand in for their members (edges are re-routed to them).
// The visible graph is split into components (connected by edges or by a shared
// top-level group; see HUB_DEGREE for fan-outs); each is laid out by dagre on its
// own and the components are packed in rows. Components with the same shape (every item of a batch) share one
// dagre run, which is what keeps 1,000+ node batches fast.
//
// A graph recorded while it runs grows: given the previous layout of the same run, nodes
// already drawn keep their places, and each new node is put where dagre would put it relative
// to its placed parents (then nudged right off any node it would cover); see pinLayout.

import { graphlib, layout as dagreLayout } from "@dagrejs/dagre";

export const NODE_W = 168;
export const NODE_H = 40;
const GROUP_NODE_W = 188;
const GROUP_NODE_H = 44;
const GAP = 28;
const GROUP_PAD_TOP = 18; // room for a group's label above its first row
// In graphs of more than HUB_MIN_NODES visible nodes, the edges on the crowded side of a node
// with more than HUB_DEGREE inputs (or outputs) do not join components: a 1,000-way fan-out is
// packed as a grid of branches instead of one rank 100,000 px wide.
const HUB_DEGREE = 24;
const HUB_MIN_NODES = 100;
const GROUP_PAD = 10; // a group's box around its members, when computed from them

/**
 * @typedef {{id: string, name: string, kind: string, target: string, module_path: string,
 *   scope: string[], item: number|null, output: boolean, live: boolean,
 *   groups: Record<string, string|null>}} NodeData
 * @typedef {{id: string, label: string, parent: string|null}} GroupData
 * @typedef {{nodes: NodeData[], edges: [string, string][], control_edges?: [string, string][],
 *   groups: Record<string, GroupData[]>}} GraphData
 * @typedef {{id: string, x: number, y: number, w: number, h: number, group?: string}} PlacedNode
 * @typedef {{id: string, x: number, y: number, w: number, h: number, depth: number}} PlacedGroup
 * @typedef {{from: string, to: string, points: {x: number, y: number}[], hub?: boolean,
 *   control?: boolean}} PlacedEdge
 * @typedef {{x0: number, y0: number, x1: number, y1: number}} Bounds
 */

/**
 * What is visible: each node's stand-in (itself or its outermost collapsed group).
 * @param {GraphData} data
 * @param {string} groupBy
 * @param {Set<string>} collapsed
 */
export function visibleGraph(data, groupBy, collapsed) {
  /** @type {Map<string, GroupData>} */
  const groups = new Map();
  for (const g of (groupBy !== "none" && data.groups[groupBy]) || []) groups.set(g.id, g);
  const chain = (gid) => {
    const out = [];
    for (let g = gid; g && groups.has(g); g = groups.get(g).parent) out.unshift(g);
    return out; // outermost first
  };
  /** @type {Map<string, string[]>} */
  const chains = new Map();
  const chainOf = (gid) => {
    if (!gid) return [];
    if (!chains.has(gid)) chains.set(gid, chain(gid));
    return chains.get(gid);
  };
  /** @type {Map<string, string>} node id -> visible id */
  const owner = new Map();
  /** @type {Map<string, string[]>} collapsed group id -> member node ids */
  const members = new Map();
  /** @type {Map<string, string|null>} visible id -> parent group id */
  const parent = new Map();
  const openGroups = new Set();
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
  const seen = new Set();
  /** @type {[string, string, boolean][]} [from, to, control only] */
  const edges = [];
  const add = (list, control) => {
    for (const [u, v] of list || []) {
      const a = owner.get(u);
      const b = owner.get(v);
      if (a === undefined || b === undefined || a === b) continue;
      const key = a + "\u0000" + b;
      if (!seen.has(key)) {
        seen.add(key);
        edges.push([a, b, control]);
      }
    }
  };
  add(data.edges, false);
  add(data.control_edges, true); // a pair joined by data too is drawn as data
  const groupParent = new Map([...openGroups].map((g) => [g, groups.get(g).parent]));
  return { owner, members, parent, edges, groups, openGroups, groupParent, chainOf };
}

/** Union-find over visible ids. */
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
  const byTop = new Map();
  for (const id of ids) {
    const top = topOf(id);
    if (top === null) continue;
    if (byTop.has(top)) join(id, byTop.get(top));
    else byTop.set(top, id);
  }
  /** @type {Map<string, string[]>} */
  const out = new Map();
  for (const id of ids) {
    const root = find(id);
    if (!out.has(root)) out.set(root, []);
    out.get(root).push(id);
  }
  return [...out.values()];
}

/** Run dagre on one component; coordinates are local, indexed like `items` / `groupIds`. */
function layoutComponent(items, groupIds, edges, parentOf, sizeOf) {
  const g = new graphlib.Graph({ compound: true });
  g.setGraph({ rankdir: "TB", nodesep: 18, ranksep: 34, marginx: 6, marginy: 6 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const gid of groupIds) g.setNode(gid, {});
  for (const gid of groupIds) {
    const p = parentOf(gid);
    if (p) g.setParent(gid, p);
  }
  for (const id of items) {
    const [w, h] = sizeOf(id);
    g.setNode(id, { width: w, height: h });
    const p = parentOf(id);
    if (p) g.setParent(id, p);
  }
  for (const [a, b] of edges) g.setEdge(a, b);
  dagreLayout(g);
  const place = (id) => {
    const n = g.node(id);
    return { x: n.x, y: n.y, w: n.width, h: n.height };
  };
  return {
    items: items.map(place),
    groups: groupIds.map(place),
    edges: edges.map(([a, b]) => g.edge(a, b).points.map((p) => ({ x: p.x, y: p.y }))),
  };
}

/**
 * Lay out the visible graph.
 * @param {GraphData} data
 * @param {string} groupBy
 * @param {Set<string>} collapsed
 * @param {number} aspect  wanted width / height of the whole drawing
 * @param {{nodes: Map<string, PlacedNode>, cols: number}|null} previous  the last layout of this
 *   graph (it grew): its nodes keep their places
 * @param {boolean} running  the run is going on (a recorded graph will grow)
 */
export function layoutGraph(data, groupBy, collapsed, aspect = 1.8, previous = null, running = false) {
  const vis = visibleGraph(data, groupBy, collapsed);
  const ids = [...new Set(vis.owner.values())];
  const isGroup = (id) => vis.members.has(id);
  const parentOf = (id) => (vis.parent.has(id) ? vis.parent.get(id) : vis.groupParent.get(id));
  const topOf = (id) => {
    const p = parentOf(id);
    const ch = p ? vis.chainOf(p) : isGroup(id) ? vis.chainOf(id) : [];
    return ch.length ? ch[0] : null;
  };
  const sizeOf = (id) => (isGroup(id) ? [GROUP_NODE_W, GROUP_NODE_H] : [NODE_W, NODE_H]);
  const { local, cross } = splitHubEdges(vis.edges, ids.length);
  const outEdges = new Map();
  for (const e of local) {
    if (!outEdges.has(e[0])) outEdges.set(e[0], []);
    outEdges.get(e[0]).push(e);
  }
  const cache = new Map();
  const placed = [];
  for (const comp of components(ids, local, topOf)) {
    const index = new Map(comp.map((id, i) => [id, i]));
    const groupIds = [];
    const groupIndex = new Map();
    for (const id of comp) {
      for (let p = parentOf(id); p && !groupIndex.has(p); p = vis.groupParent.get(p)) {
        groupIndex.set(p, -1);
        groupIds.push(p);
      }
    }
    groupIds.reverse(); // parents before children
    groupIds.forEach((gid, i) => groupIndex.set(gid, i));
    const edges = comp.flatMap((id) => outEdges.get(id) || []);
    const localParent = (id) => {
      const p = parentOf(id);
      return p ? "g" + groupIndex.get(p) : "";
    };
    const signature = [
      comp.map((id) => `${isGroup(id) ? "G" : "n"}${localParent(id)}`).join(","),
      groupIds.map((gid) => localParent(gid)).join(","),
      edges.map(([a, b]) => `${index.get(a)}>${index.get(b)}`).join(","),
    ].join("|");
    let local = cache.get(signature);
    if (!local) {
      local = layoutComponent(comp, groupIds, edges, parentOf, sizeOf);
      cache.set(signature, local);
    }
    placed.push({ comp, groupIds, edges, local });
  }
  let blocks = placed.map((entry) => toBlock(entry, vis, isGroup));
  if (data.recorded && running) {
    // Group boxes drawn around their members, as they will be once nodes are pinned.
    blocks = blocks.map((b) => ({ ...b, groups: groupBoxes(b.groups, b.nodes, vis, parentOf) }));
  }
  const growing = Boolean(previous) && ids.some((id) => previous.nodes.has(id));
  if (growing) {
    blocks = blocks.map((b) => (b.nodes.some((n) => previous.nodes.has(n.id)) ? pinLayout(b, previous.nodes, vis, parentOf, aspect) : b));
  }
  // A batch that grows while drawn: its items sit in a grid whose column count stays fixed,
  // so an item that grows moves only the items right of it or below it.
  // A batch item keeps its cell (by item number) even when items start out of order.
  const items = ((data.groups || {}).module || []).filter((g) => g.kind === "item").length;
  const slots = placed.map(({ comp }, i) => {
    const top = topOf(comp[0]);
    return top && top.startsWith("item:") ? Number(top.slice(5)) : i;
  });
  const count = Math.max(items, blocks.length);
  const grid = items > 0 && data.recorded && (growing || running);
  const cols = grid ? previous?.cols || Math.min(count, Math.ceil(Math.sqrt(count * aspect * 3))) : 0;
  const laid =
    growing && blocks.length === 1
      ? { ...blocks[0], bounds: boundsOf(blocks[0].nodes, blocks[0].groups) }
      : arrange(blocks, aspect, cols, items ? slots : null);
  laid.cols = cols;
  const at = new Map(laid.nodes.map((n) => [n.id, n]));
  for (const [a, b, control] of cross) {
    const u = at.get(a);
    const v = at.get(b);
    const bend = Math.max(24, Math.abs(v.y - u.y) / 3);
    const points = [
      { x: u.x, y: u.y + u.h / 2 },
      { x: u.x, y: u.y + u.h / 2 + bend },
      { x: v.x, y: v.y - v.h / 2 - bend },
      { x: v.x, y: v.y - v.h / 2 },
    ];
    laid.edges.push({ from: a, to: b, points, hub: true, control });
  }
  laid.width = laid.bounds.x1 - laid.bounds.x0;
  laid.height = laid.bounds.y1 - laid.bounds.y0;
  return laid;
}

/** One laid-out component as nodes, groups (with room for their labels) and edges. */
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

const overlaps = (a, b) =>
  Math.abs(a.x - b.x) < (a.w + b.w) / 2 + 16 && Math.abs(a.y - b.y) < (a.h + b.h) / 2 + 12;

/** Placed rectangles bucketed on a coarse grid: "what does this rectangle cover?" stays cheap. */
class Buckets {
  constructor(rects) {
    this.cells = new Map();
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
}

/**
 * Keep the nodes of `previous` where they were; place the new ones relative to their parents.
 * @param {{nodes: PlacedNode[], groups: PlacedGroup[], edges: PlacedEdge[]}} laid  a fresh layout
 * @param {Map<string, PlacedNode>} previous
 */
function pinLayout(laid, previous, vis, parentOf, aspect) {
  const fresh = new Map(laid.nodes.map((n) => [n.id, n]));
  /** @type {Map<string, PlacedNode>} */
  const at = new Map();
  const parents = new Map();
  for (const [a, b] of laid.edges.map((e) => [e.from, e.to])) {
    if (!parents.has(b)) parents.set(b, []);
    parents.get(b).push(a);
  }
  const shift = (id) => ({ dx: at.get(id).x - fresh.get(id).x, dy: at.get(id).y - fresh.get(id).y });
  for (const n of laid.nodes) {
    const old = previous.get(n.id);
    if (old) at.set(n.id, { ...n, x: old.x, y: old.y });
  }
  const placedBounds = () => boundsOf([...at.values()], []);
  const news = laid.nodes.filter((n) => !at.has(n.id));
  // New nodes with no placed parent (a new batch item, a call before any other) go as a block
  // into free space: right of the drawing, or below it once it is wide enough.
  const looseIds = new Set();
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
    for (const n of loose) at.set(n.id, { ...n, x: n.x + dx, y: n.y + dy });
  }
  const grid = new Buckets([...at.values()]);
  for (const n of news) {
    if (at.has(n.id)) continue;
    const placed = (parents.get(n.id) || []).filter((p) => at.has(p));
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
    at.set(n.id, node);
    grid.add(node);
  }
  const nodes = laid.nodes.map((n) => at.get(n.id));
  const groups = groupBoxes(laid.groups, nodes, vis, parentOf);
  const edges = laid.edges.map((e) => {
    const a = shift(e.from);
    const b = shift(e.to);
    if (Math.abs(a.dx - b.dx) < 0.5 && Math.abs(a.dy - b.dy) < 0.5) {
      return { ...e, points: e.points.map((p) => ({ x: p.x + a.dx, y: p.y + a.dy })) };
    }
    return { ...e, points: curve(at.get(e.from), at.get(e.to)) };
  });
  const bounds = boundsOf(nodes, groups);
  return { nodes, groups, edges, width: bounds.x1 - bounds.x0, height: bounds.y1 - bounds.y0, bounds };
}

/** The boxes of the groups around their (placed) members, innermost first, then sorted outer first. */
function groupBoxes(freshGroups, nodes, vis, parentOf) {
  const members = new Map();
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
      h: b.y1 - b.y0 + 2 * GROUP_PAD + GROUP_PAD_TOP,
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

/** An edge from the bottom of `u` to the top of `v` (for nodes placed off dagre's layout). */
function curve(u, v) {
  const bend = Math.max(18, Math.abs(v.y - v.h / 2 - (u.y + u.h / 2)) / 3);
  return [
    { x: u.x, y: u.y + u.h / 2 },
    { x: u.x, y: u.y + u.h / 2 + bend },
    { x: v.x, y: v.y - v.h / 2 - bend },
    { x: v.x, y: v.y - v.h / 2 },
  ];
}

/** Edges that join components, and the hub edges drawn across the packed grid. */
function splitHubEdges(edges, visibleCount) {
  if (visibleCount <= HUB_MIN_NODES) return { local: edges, cross: [] };
  const outs = new Map();
  const ins = new Map();
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

/**
 * Place the blocks side by side: shelf-packed into rows to the wanted aspect, or (``cols`` > 0)
 * in a grid of ``cols`` columns, each column as wide and each row as tall as its largest block.
 */
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
  const colW = new Array(cols).fill(NODE_W + 2 * GROUP_PAD); // an item not started yet keeps its room
  const rowH = new Array(Math.ceil((Math.max(-1, ...slots) + 1) / cols)).fill(0);
  boxes.forEach((b, i) => {
    const [c, r] = [slots[i] % cols, Math.floor(slots[i] / cols)];
    colW[c] = Math.max(colW[c], b.x1 - b.x0);
    rowH[r] = Math.max(rowH[r], b.y1 - b.y0);
  });
  const xs = colW.map((_, c) => colW.slice(0, c).reduce((s, w) => s + w + GAP, 0));
  const ys = rowH.map((_, r) => rowH.slice(0, r).reduce((s, h) => s + h + GAP, 0));
  return slots.map((slot) => ({ x: xs[slot % cols], y: ys[Math.floor(slot / cols)] }));
}

/** An SVG path through dagre's edge points (a uniform B-spline, like d3's curveBasis). */
export function edgePath(points) {
  const p = points;
  if (p.length < 3) return `M${p[0].x},${p[0].y}L${p[p.length - 1].x},${p[p.length - 1].y}`;
  let d = `M${p[0].x},${p[0].y}`;
  let [x0, y0, x1, y1] = [p[0].x, p[0].y, p[0].x, p[0].y];
  const curve = (x, y) =>
    `C${(2 * x0 + x1) / 3},${(2 * y0 + y1) / 3},${(x0 + 2 * x1) / 3},${(y0 + 2 * y1) / 3},` +
    `${(x0 + 4 * x1 + x) / 6},${(y0 + 4 * y1 + y) / 6}`;
  p.slice(1).forEach(({ x, y }, i) => {
    if (i === 1) d += `L${(5 * x0 + x1) / 6},${(5 * y0 + y1) / 6}`;
    if (i >= 1) d += curve(x, y);
    [x0, y0, x1, y1] = [x1, y1, x, y];
  });
  return d + curve(x1, y1) + `L${x1},${y1}`;
}
