"""The graph a `GraphView` draws, as JSON-able data: nodes, edges, and their groups.

Nodes are keyed by node id, or ``"<item>/<node id>"`` for the items of a batch
(one graph per item, drawn side by side). Each node names its group under
both groupings: ``"module"`` nests along the dotted module path (an LLM or leaf
module node sits in its parent module's group, as in `InferenceGraph.to_dot`),
``"scope"`` along the helper-function scopes (a helper called twice gives two
groups). Batch items are the outermost groups of both.

Graphs recorded while they run (define-by-run) add two things: control edges
(drawn only where no other path already orders the two calls, see
`control_edges`) and loop iterations (see `iterations`), which are groups of
both groupings, inside the group of the code that loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from plait.graph import GraphNode, InferenceGraph, NodeKind

GROUPINGS = ("module", "scope", "none")


def node_key(item: int | None, node_id: str) -> str:
    """The key of a node in the view: its id, prefixed by its batch item."""
    return node_id if item is None else f"{item}/{node_id}"


def _module_parts(node: GraphNode) -> tuple[str, ...]:
    if not node.module_path:
        return ()
    parts = tuple(node.module_path.split("."))
    # An LLM or leaf-module node *is* the module at its path: it belongs to the parent's group.
    return parts[:-1] if node.kind in (NodeKind.LLM, NodeKind.MODULE) else parts


class _Groups:
    """Collects the groups of one grouping, each registered once, parents before children."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def chain(
        self, prefix: str, parent: str | None, links: Sequence[tuple[str, str, str]]
    ) -> str | None:
        """Register the nested groups ``links`` ((id part, label, kind)) under ``parent``.

        Returns the innermost group id.
        """
        gid = parent
        for depth in range(len(links)):
            child = f"{prefix}{'/'.join(part for part, _, _ in links[: depth + 1])}"
            if child not in self.entries:
                _, label, kind = links[depth]
                self.entries[child] = {"id": child, "label": label, "parent": gid, "kind": kind}
            gid = child
        return gid


def _ancestor_masks(graph: InferenceGraph) -> tuple[dict[str, int], dict[str, int]]:
    """Each node's creation index, and its ancestors (data and control) as a bit mask of them."""
    index = {nid: i for i, nid in enumerate(graph.nodes)}
    masks: dict[str, int] = {}
    for nid, node in graph.nodes.items():
        mask = 0
        for parent in (*node.dependencies, *node.control):
            if parent in index:
                mask |= masks.get(parent, 0) | (1 << index[parent])
        masks[nid] = mask
    return index, masks


def control_edges(
    graph: InferenceGraph, masks: dict[str, int], index: dict[str, int]
) -> list[tuple[str, str]]:
    """The control edges worth drawing: ``c -> node`` unless another input already follows ``c``.

    The recorder keeps the replies awaited since the caller's previous call;
    one of those may still be implied by a data edge (or by a graph recorded
    before that reduction), and is then not drawn.
    """
    out: list[tuple[str, str]] = []
    for nid, node in graph.nodes.items():
        if not node.control:
            continue
        implied = 0
        for parent in (*node.dependencies, *node.control):
            implied |= masks.get(parent, 0)
        out.extend(
            (c, nid)
            for c in node.control
            if c in index and c not in node.dependencies and not implied >> index[c] & 1
        )
    return out


def iterations(
    graph: InferenceGraph, masks: dict[str, int], index: dict[str, int]
) -> dict[str, tuple[str, int, int]]:
    """Node id -> (caller key, loop number, iteration) for the calls made in a loop.

    From the call keys (``"<caller>/<call path>#<occurrence>"``): a call path
    repeated by one caller, each occurrence after the one before (an
    ancestor: a loop, not a map), marks a loop; occurrence n is iteration n+1.
    Other calls of that caller made between the loop's first and last
    repeated call belong to the iteration of the repeated call before them.
    Loops of one caller that do not overlap are numbered apart.
    """
    calls: dict[str, list[tuple[int, str, str, int]]] = {}
    for nid, node in graph.nodes.items():
        key = node.call_key
        if not key or "#" not in key:
            continue
        caller, _, call = key.rpartition("/")
        path, _, occurrence = call.rpartition("#")
        if occurrence.isdigit():
            calls.setdefault(caller, []).append((index[nid], nid, path, int(occurrence)))
    out: dict[str, tuple[str, int, int]] = {}
    for caller, made in calls.items():
        by_path: dict[str, list[tuple[int, str]]] = {}
        for i, nid, path, _ in made:
            by_path.setdefault(path, []).append((i, nid))
        spans: list[tuple[int, int, str]] = []
        for path, seq in by_path.items():
            if len(seq) > 1 and all(
                masks[after] >> before & 1 for (before, _), (_, after) in pairwise(seq)
            ):
                spans.append((seq[0][0], seq[-1][0], path))
        if not spans:
            continue
        spans.sort()
        loops: list[tuple[int, int, set[str]]] = []
        for first, last, path in spans:
            if loops and first <= loops[-1][1]:
                start, end, paths = loops[-1]
                loops[-1] = (start, max(end, last), paths | {path})
            else:
                loops.append((first, last, {path}))
        for number, (start, end, paths) in enumerate(loops):
            seen: dict[str, int] = {}
            current = 0
            for i, nid, path, _ in made:
                if not start <= i <= end:
                    continue
                if path in paths:
                    seen[path] = seen.get(path, 0) + 1
                    current = seen[path]
                if current:
                    out[nid] = (caller, number, current)
    return out


def _iteration_link(caller: str, loop: int, iteration: int) -> tuple[str, str, str]:
    label = f"iteration {iteration}" if loop == 0 else f"loop {loop + 1} · iteration {iteration}"
    return (f"{caller}@{loop}#{iteration}", label, "iteration")


def _callers(graph: InferenceGraph) -> dict[str, GraphNode]:
    return {node.call_key: node for node in graph.nodes.values() if node.call_key}


def graph_payload(
    graphs: Sequence[InferenceGraph], *, batch: bool, title: str, max_nodes: int
) -> dict[str, Any]:
    """The ``graph_data`` of a view of ``graphs`` (one per batch item, or a single run's one).

    Whole batch items are drawn until ``max_nodes`` would be exceeded; ``hidden``
    counts the nodes left out.
    """
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
    controls: list[list[str]] = []
    by_module, by_scope = _Groups(), _Groups()
    hidden = 0
    for index, graph in enumerate(graphs):
        item = index if batch else None
        if nodes and len(nodes) + len(graph.nodes) > max_nodes:
            hidden += len(graph.nodes)
            continue
        top: str | None = None
        prefix = ""
        if item is not None:
            top = f"item:{item}"
            prefix = f"{item}/"
            for groups in (by_module, by_scope):
                groups.entries[top] = {
                    "id": top,
                    "label": f"item {item}",
                    "parent": None,
                    "kind": "item",
                }
        outputs = set(graph.output_ids)
        order, masks = _ancestor_masks(graph)
        rounds = iterations(graph, masks, order)
        callers = _callers(graph) if rounds else {}
        for node in graph.nodes.values():
            module_parts = _module_parts(node)
            # Module group labels are dotted paths ("pipeline.analyzer"), scope labels the helper call.
            module_links = [
                (label, label, "module")
                for label in (".".join(module_parts[: d + 1]) for d in range(len(module_parts)))
            ]
            scope_links = [(name, name, "scope") for name in node.scope]
            where = rounds.get(node.id)
            if where is not None:
                # The iteration sits inside the groups of the code that loops (the caller).
                caller = callers.get(where[0])
                link = _iteration_link(*where)
                depth = _caller_depth(caller, module_parts)
                module_links.insert(depth, link)
                scope_links.insert(len(caller.scope) if caller else 0, link)
            module_group = by_module.chain(f"{prefix}m:", top, module_links)
            scope_group = by_scope.chain(f"{prefix}s:", top, scope_links)
            nodes.append(
                {
                    "id": node_key(item, node.id),
                    "name": node.name,
                    "kind": str(node.kind),
                    "target": node.target,
                    "module_path": node.module_path,
                    "scope": list(node.scope),
                    "item": item,
                    "output": node.id in outputs,
                    "live": node.live,
                    "groups": {"module": module_group, "scope": scope_group},
                    "after": [node_key(item, c) for c in node.control],
                    "call_key": node.call_key or "",
                }
            )
            edges.extend(
                [node_key(item, dep), node_key(item, node.id)]
                for dep in node.dependencies
                if dep in graph.nodes
            )
        controls.extend(
            [node_key(item, a), node_key(item, b)] for a, b in control_edges(graph, masks, order)
        )
    return {
        "title": title,
        "nodes": nodes,
        "edges": edges,
        "control_edges": controls,
        "groups": {
            "module": list(by_module.entries.values()),
            "scope": list(by_scope.entries.values()),
        },
        "hidden": hidden,
    }


def _caller_depth(caller: GraphNode | None, parts: Sequence[str]) -> int:
    """How many of a call's module groups belong to the code that made it (``caller``)."""
    if caller is None:
        return 0
    # A module node's calls are grouped inside it; an op's calls beside it.
    own = caller.module_path.split(".") if caller.kind is NodeKind.MODULE else _module_parts(caller)
    depth = 0
    while depth < min(len(own), len(parts)) and own[depth] == parts[depth]:
        depth += 1
    return depth


def view_title(graphs: Sequence[InferenceGraph], *, batch: bool, run_id: str = "") -> str:
    """ "SummarizeThenAnalyze · run-3", or "... · batch of 200 items"."""
    root = graphs[0].root if graphs else None
    name = type(root).__name__ if root is not None else "graph"
    if batch:
        return f"{name} · batch of {len(graphs)} item{'s' if len(graphs) != 1 else ''}"
    return f"{name} · {run_id}" if run_id else name
