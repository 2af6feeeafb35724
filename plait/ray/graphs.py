"""Graphs grown on a worker, rebuilt on the caller: nodes travel without their modules.

A define-by-run item records its calls as nodes while it runs on a worker (so
does a traced item whose module node made calls). The worker sends each
recorded node as it is added (in its ``node_added`` event) and all of them,
in call order, when the item finishes; a node's module travels as its path in
the root module (`ModuleAt`), and the caller puts its own module object back.
So the caller's graph refers to the caller's modules, as a local run's does
(what-if re-runs, training records and the ``%%plait`` view rely on it), and
a call costs the pickling of its node's own fields, not of a module.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from plait.execution import events as ev
from plait.execution.run import dynamic_graph
from plait.graph import GraphNode, InferenceGraph
from plait.module import Module

# GraphNode's constructor fields: a node is rebuilt with another module per recorded call, and
# `dataclasses.replace` (which looks the fields up each time) was most of that cost.
_FIELDS = tuple(f.name for f in fields(GraphNode) if f.init and f.name != "module")


def _with_module(node: GraphNode, module: Any) -> GraphNode:
    return GraphNode(module=module, **{name: getattr(node, name) for name in _FIELDS})


def _set_node(event: ev.NodeAdded, node: GraphNode) -> ev.NodeAdded:
    # The event is this process's own copy (made here, or just unpickled): set in place.
    object.__setattr__(event, "node", node)
    return event


@dataclass(frozen=True, slots=True)
class ModuleAt:
    """A node's module, named by its path in the batch's root module."""

    path: str


@dataclass(frozen=True)
class Grown:
    """What an item's run added to its graph: nodes in call order (modules as paths), its output."""

    nodes: list[GraphNode]
    output: Any = None  # a define-by-run graph's output structure (set when forward returned)


class Shipper:
    """The worker's side: nodes and events with each registered module replaced by its path."""

    def __init__(self, root: Module) -> None:
        self._paths = {id(module): ModuleAt(path) for path, module in root.named_modules()}
        # Each node sent in its event, as sent, until its item ends (then sent again, as is).
        # The entry keeps the node alive, so its id cannot be reused meanwhile; a node replaced
        # after it was sent (a module node that made calls) leaves its entry until the batch ends.
        self._shipped: dict[int, tuple[GraphNode, GraphNode]] = {}

    def node(self, node: GraphNode) -> GraphNode:
        entry = self._shipped.pop(id(node), None)
        if entry is not None and entry[0] is node:
            return entry[1]
        at = self._paths.get(id(node.module))
        return node if at is None else _with_module(node, at)

    def event(self, event: ev.Event) -> ev.Event:
        if type(event) is ev.NodeAdded and event.node is not None:
            node = event.node
            shipped = self.node(node)
            self._shipped[id(node)] = (node, shipped)
            return _set_node(event, shipped)
        return event

    def grown(self, base: InferenceGraph, graph: InferenceGraph) -> Grown | None:
        """The nodes ``graph`` has beyond (or changed from) ``base``; None if it did not grow."""
        if graph.dynamic:
            return Grown([self.node(n) for n in graph.nodes.values()], graph.output)
        if graph is base:
            return None
        known = base.nodes
        return Grown([self.node(n) for nid, n in graph.nodes.items() if known.get(nid) is not n])


class Rebuilder:
    """The caller's side: each item's graph, grown from the nodes its worker reports."""

    def __init__(self, root: Module, graphs: list[InferenceGraph]) -> None:
        self.root = root
        self._modules = dict(root.named_modules())
        self.graphs = list(graphs)  # each item's graph as it stands
        self._given = list(graphs)  # as traced (shared by items of one shape) or as begun

    def node(self, node: GraphNode) -> GraphNode:
        at = node.module
        return _with_module(node, self._modules[at.path]) if type(at) is ModuleAt else node

    def event(self, event: ev.Event) -> ev.Event:
        """``event`` with its node's module restored; a ``node_added`` grows the item's graph."""
        if type(event) is not ev.NodeAdded or event.node is None or event.item is None:
            return event
        node = self.node(event.node)
        graph = self._own(event.item)
        if node.id not in graph.nodes:
            graph.add_node(node)
        return _set_node(event, node)

    def finished(self, index: int, grown: Grown | None) -> InferenceGraph:
        """Item ``index``'s final graph: its nodes' last versions and (define-by-run) its output."""
        if grown is None:
            return self.graphs[index]
        graph = self._own(index)
        for shipped in grown.nodes:
            current = graph.nodes.get(shipped.id)
            if current is None or current.dependencies != shipped.dependencies:
                graph.replace_node(self.node(shipped))  # a module node learns its calls' edges
        if graph.dynamic:
            graph.set_output(grown.output)
        return graph

    def restart(self, index: int) -> None:
        """Item ``index`` runs again (its worker died): it grows a new graph from scratch."""
        given = self._given[index]
        if given.dynamic:
            args, kwargs = given.call
            given = dynamic_graph(self.root, args, kwargs, like=given)
        self.graphs[index] = given

    def _own(self, index: int) -> InferenceGraph:
        graph = self.graphs[index]
        if not graph.dynamic and graph is self._given[index]:
            graph = self.graphs[index] = graph.grown_copy()  # the traced graph is shared
        return graph
