"""`InferenceGraph` and `GraphNode`: a traced pipeline as data.

Node arguments hold `ValueRef`s (outputs of other nodes, or ``param:<name>``
for parameters read at run time), FSTRING `Value`s whose fields are such refs,
and literals. ``dependencies`` are the node ids a node waits on;
``parameters`` the parameter refs it reads. Nodes are stored in creation order,
which for a traced graph is already a topological order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from plait import graph_analysis, graph_export
from plait._upcalls import notebook_html
from plait.errors import GraphError
from plait.values import collect_refs


class NodeKind(StrEnum):
    """What executing a node means."""

    INPUT = "input"  # a value given to forward()
    LLM = "llm"  # an LLMInference call, served by an endpoint
    MODULE = "module"  # a call of another leaf module's forward at run time
    OP = "op"  # a functional op or @plait.op function


@dataclass(slots=True)
class GraphNode:
    """One operation of a traced pipeline.

    ``module`` is what runs (an `LLMInference`, a leaf module, or an op);
    ``module_path`` the dotted path of the module called (for op nodes, of the
    module whose ``forward`` called the op); ``scope`` the enclosing helper
    calls, outermost first (``("add_review#2",)``); ``live`` is False for
    nodes that reach no output and have no side effects (they are not run).

    Nodes recorded while a run executes (define-by-run, see
    `plait.execution.dynamic`) also carry ``control``: the nodes whose awaited
    result preceded this call in the same ``forward`` (the classifier whose
    label chose this expert), and ``call_key``: the call path and occurrence
    that identify the call across re-runs (``"/router.expert#0"``).

    Treat a node as read-only: a graph swaps in a new version (`replace_node`)
    rather than changing one. It is not a frozen dataclass only because a frozen
    ``__init__`` costs several times more, and a run records one per call it makes.
    """

    id: str
    kind: NodeKind
    name: str
    module: Any = None
    module_path: str = ""
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()
    side_effects: bool = False
    live: bool = True
    source: str | None = None
    control: tuple[str, ...] = ()
    call_key: str | None = None

    # The endpoint alias of an LLM node, else None (derived from ``module``; read on hot paths).
    alias: str | None = field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind is NodeKind.LLM:
            self.alias = getattr(self.module, "alias", None)

    @property
    def target(self) -> str:
        """What the node calls: alias (LLM), op name (OP), module type (MODULE); "" for inputs."""
        return graph_export.node_target(self)


class InferenceGraph:
    """A traced pipeline: nodes, inputs, and the output structure.

    ``output`` has the structure ``forward`` returned, with `ValueRef`s where
    node outputs go; ``output_ids`` are the node ids it refers to, in order.
    ``parameters`` maps each ``param:<name>`` ref to its `Parameter`.
    """

    def __init__(
        self,
        nodes: Mapping[str, GraphNode],
        input_ids: Iterable[str],
        output: Any,
        parameters: Mapping[str, Any] | None = None,
        *,
        root: Any = None,
        input_paths: Mapping[str, tuple[str, tuple[Any, ...]]] | None = None,
    ) -> None:
        self.nodes: dict[str, GraphNode] = dict(nodes)
        self.input_ids: tuple[str, ...] = tuple(input_ids)
        self.output = output
        self.parameters: dict[str, Any] = dict(parameters or {})
        self.root = root
        # Input node id -> (forward argument name, key path inside that argument).
        self.input_paths = dict(input_paths or {})
        self.output_ids: tuple[str, ...] = tuple(r for r in collect_refs(output) if r in self.nodes)
        self._dependents: dict[str, tuple[str, ...]] | None = None
        # True for a graph recorded while its run executes (an async forward): it grows.
        self.dynamic = False
        # A dynamic graph's forward arguments (args, kwargs), kept for replays (what-if re-runs).
        self.call: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})
        # For a run's own copy of a traced graph that grew while running: the traced original.
        self.base: InferenceGraph | None = None
        # What recording calls into this graph needs to know of ``root`` (made on first use,
        # shared by every item of a batch); see `plait.execution.recording.Layout`.
        self.layout: Any = None

    def grown_copy(self) -> InferenceGraph:
        """A copy a run may add nodes to, leaving this graph (shared by batch items) unchanged."""
        copy = InferenceGraph(
            self.nodes,
            self.input_ids,
            self.output,
            self.parameters,
            root=self.root,
            input_paths=self.input_paths,
        )
        copy.dynamic, copy.call, copy.base = self.dynamic, self.call, self.base or self
        copy.layout = self.layout
        return copy

    def add_node(self, node: GraphNode) -> None:
        """Append a node recorded at run time; its dependencies must already be in the graph."""
        nodes, nid, deps = self.nodes, node.id, node.dependencies
        if nid in nodes:
            raise GraphError(f"node {nid!r} is already in the graph")
        for dep in deps:
            if dep not in nodes:
                raise GraphError(f"node {nid!r} depends on missing node {dep!r}")
        for dep in node.control:
            if dep not in nodes:
                raise GraphError(f"node {nid!r} depends on missing node {dep!r}")
        self.append(node)

    def append(self, node: GraphNode) -> None:
        """`add_node` without its checks, for a recorder whose node refers only to this graph's
        nodes (it made the node from them) under an id not in it yet."""
        nid = node.id
        self.nodes[nid] = node
        dependents = self._dependents
        if dependents is not None:
            dependents[nid] = ()
            for dep in node.dependencies:
                dependents[dep] += (nid,)

    def replace_node(self, node: GraphNode) -> None:
        """Swap in a new version of an existing node (a dynamic module's edges once it returned)."""
        self.nodes[node.id] = node
        self._dependents = None

    def set_output(self, output: Any) -> None:
        """Set the output structure (a dynamic graph learns it when ``forward`` returns)."""
        self.output = output
        self.output_ids = tuple(r for r in collect_refs(output) if r in self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def __getitem__(self, node_id: str) -> GraphNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KeyError(
                f"no node {node_id!r} in this graph; nodes: {', '.join(self.nodes)}"
            ) from None

    def dependents(self, node_id: str) -> tuple[str, ...]:
        """Ids of the nodes that wait on ``node_id``."""
        if self._dependents is None:
            found: dict[str, list[str]] = {nid: [] for nid in self.nodes}
            for node in self.nodes.values():
                for dep in node.dependencies:
                    found.setdefault(dep, []).append(node.id)
            self._dependents = {nid: tuple(ids) for nid, ids in found.items()}
        return self._dependents.get(node_id, ())

    def topological_order(self) -> list[str]:
        """Node ids with every node after its dependencies; ties keep creation order."""
        indegree = {nid: 0 for nid in self.nodes}
        for node in self.nodes.values():
            for dep in node.dependencies:
                if dep in indegree:
                    indegree[node.id] += 1
        ready = deque(nid for nid, n in indegree.items() if n == 0)
        order: list[str] = []
        while ready:
            nid = ready.popleft()
            order.append(nid)
            for child in self.dependents(nid):
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        if len(order) != len(self.nodes):
            raise GraphError(f"the graph has a cycle: {' -> '.join(self._find_cycle())}")
        return order

    def _find_cycle(self) -> list[str]:
        color: dict[str, int] = {}
        stack: list[str] = []

        def visit(nid: str) -> list[str] | None:
            color[nid] = 1
            stack.append(nid)
            for dep in self.nodes[nid].dependencies:
                if dep not in self.nodes:
                    continue
                if color.get(dep) == 1:
                    return [*stack[stack.index(dep) :], dep]
                if dep not in color and (cycle := visit(dep)):
                    return cycle
            stack.pop()
            color[nid] = 2
            return None

        for nid in self.nodes:
            if nid not in color and (cycle := visit(nid)):
                return cycle[::-1]
        return []

    def _walk(self, start: str, step: Any) -> set[str]:
        self[start]
        seen: set[str] = set()
        todo = list(step(start))
        while todo:
            nid = todo.pop()
            if nid not in seen:
                seen.add(nid)
                todo.extend(step(nid))
        return seen

    def ancestors(self, node_id: str, *, control: bool = False) -> set[str]:
        """Every node ``node_id`` depends on, directly or not (also through control edges)."""

        def step(nid: str) -> tuple[str, ...]:
            node = self.nodes.get(nid)
            if node is None:
                return ()
            return (*node.dependencies, *node.control) if control else node.dependencies

        return self._walk(node_id, step)

    def descendants(self, node_id: str) -> set[str]:
        """Every node that depends on ``node_id``, directly or not."""
        return self._walk(node_id, self.dependents)

    def live_ids(self) -> list[str]:
        """Ids of the nodes a run executes, in creation order."""
        return [nid for nid, node in self.nodes.items() if node.live]

    def validate(self) -> None:
        """Check the invariants; raise `GraphError` naming every problem found."""
        problems = []
        for node in self.nodes.values():
            missing = [d for d in node.dependencies if d not in self.nodes]
            if missing:
                problems.append(f"node {node.id!r} depends on missing node(s) {', '.join(missing)}")
            for ref in collect_refs(node.args, node.kwargs):
                if ref.startswith("param:"):
                    if ref not in self.parameters:
                        problems.append(f"node {node.id!r} reads unknown parameter {ref!r}")
                elif ref not in node.dependencies:
                    problems.append(f"node {node.id!r} uses {ref!r} without depending on it")
        for ref in collect_refs(self.output):
            if not ref.startswith("param:") and ref not in self.nodes:
                problems.append(f"the output refers to missing node {ref!r}")
        if problems:
            raise GraphError("invalid graph: " + "; ".join(problems))
        self.topological_order()

    def critical_path(self, durations: Mapping[str, float]) -> tuple[list[str], float]:
        """The heaviest chain of live nodes under ``durations`` (by node id) and its total."""
        return graph_analysis.critical_path(self, durations)

    def structural_hash(self) -> str:
        """Hex SHA-256 of structure and settings, without input values (see `graph_analysis`)."""
        return graph_analysis.structural_hash(self)

    def to_dict(self) -> dict[str, Any]:
        """The graph as JSON-able data."""
        return graph_export.to_dict(self)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The graph as stable JSON (see `graph_export.to_json`)."""
        return graph_export.to_json(self, indent=indent)

    def to_dot(self, *, group_by: str | None = "module") -> str:
        """Graphviz DOT source, clustered by ``"module"`` path, helper ``"scope"``, or None."""
        return graph_export.to_dot(self, group_by=group_by)

    def to_mermaid(self, *, group_by: str | None = "module") -> str:
        """Mermaid ``flowchart TD`` source, grouped like `to_dot`."""
        return graph_export.to_mermaid(self, group_by=group_by)

    def format_table(self, *, max_rows: int | None = None) -> str:
        """A summary line and one row per node, like torch.fx's ``print_tabular``."""
        return graph_export.format_table(self, max_rows=max_rows)

    def __repr__(self) -> str:
        return graph_export.format_table(self, max_rows=20)

    def _repr_html_(self) -> str | None:
        return notebook_html(self)
