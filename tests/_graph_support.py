"""Modules, ops and hand-built graphs shared by the graph tests (also imported by subprocesses)."""

from __future__ import annotations

from typing import Any

from plait import GraphNode, InferenceGraph, NodeKind, ValueRef, op


@op(name="word_count")
def other_word_count(text: str, *, unit: Any = "words") -> int:
    return len(text)


def node(node_id: str, *deps: str, kind: NodeKind = NodeKind.OP, live: bool = True) -> GraphNode:
    """A hand-built op node reading its dependencies as positional refs."""
    args = tuple(ValueRef(dep) for dep in deps)
    return GraphNode(node_id, kind, node_id, args=args, dependencies=deps, live=live)


def graph_of(*nodes: GraphNode, outputs: tuple[str, ...] = ()) -> InferenceGraph:
    """A graph of hand-built nodes; inputs are the INPUT-kind nodes, outputs the given ids."""
    inputs = [n.id for n in nodes if n.kind is NodeKind.INPUT]
    return InferenceGraph({n.id: n for n in nodes}, inputs, [ValueRef(o) for o in outputs])


def chain_graph(size: int) -> InferenceGraph:
    """An input, then ``size - 1`` op nodes, node i reading nodes i-1 and i//2."""
    nodes = [node("n0", kind=NodeKind.INPUT)]
    for i in range(1, size):
        deps = dict.fromkeys((f"n{i - 1}", f"n{i // 2}"))
        nodes.append(node(f"n{i}", *deps))
    return graph_of(*nodes, outputs=(f"n{size - 1}",))
