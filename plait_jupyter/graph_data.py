"""The graph a `GraphView` draws, as JSON-able data: nodes, edges, and their groups.

Nodes are keyed by node id, or ``"<item>/<node id>"`` for the items of a batch
(one graph per item, drawn side by side). Each node names its group under
both groupings: ``"module"`` nests along the dotted module path (an LLM or leaf
module node sits in its parent module's group, as in `InferenceGraph.to_dot`),
``"scope"`` along the helper-function scopes (a helper called twice gives two
groups). Batch items are the outermost groups of both.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def chain(self, prefix: str, parent: str | None, labels: Sequence[str]) -> str | None:
        """Register the nested groups ``labels`` under ``parent``; return the innermost id."""
        gid = parent
        for depth, label in enumerate(labels):
            child = f"{prefix}{'/'.join(labels[: depth + 1])}"
            if child not in self.entries:
                self.entries[child] = {"id": child, "label": label, "parent": gid}
            gid = child
        return gid


def graph_payload(
    graphs: Sequence[InferenceGraph], *, batch: bool, title: str, max_nodes: int
) -> dict[str, Any]:
    """The ``graph_data`` of a view of ``graphs`` (one per batch item, or a single run's one).

    Whole batch items are drawn until ``max_nodes`` would be exceeded; ``hidden``
    counts the nodes left out.
    """
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
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
                groups.entries[top] = {"id": top, "label": f"item {item}", "parent": None}
        outputs = set(graph.output_ids)
        for node in graph.nodes.values():
            module_parts = _module_parts(node)
            # Module group labels are dotted paths ("pipeline.analyzer"), scope labels the helper call.
            module_labels = [".".join(module_parts[: d + 1]) for d in range(len(module_parts))]
            module_group = by_module.chain(f"{prefix}m:", top, module_labels)
            scope_group = by_scope.chain(f"{prefix}s:", top, list(node.scope))
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
                }
            )
            edges.extend(
                [node_key(item, dep), node_key(item, node.id)]
                for dep in node.dependencies
                if dep in graph.nodes
            )
    return {
        "title": title,
        "nodes": nodes,
        "edges": edges,
        "groups": {
            "module": list(by_module.entries.values()),
            "scope": list(by_scope.entries.values()),
        },
        "hidden": hidden,
    }


def view_title(graphs: Sequence[InferenceGraph], *, batch: bool, run_id: str = "") -> str:
    """ "SummarizeThenAnalyze · run-3", or "... · batch of 200 items"."""
    root = graphs[0].root if graphs else None
    name = type(root).__name__ if root is not None else "graph"
    if batch:
        return f"{name} · batch of {len(graphs)} item{'s' if len(graphs) != 1 else ''}"
    return f"{name} · {run_id}" if run_id else name
