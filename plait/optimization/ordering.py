"""The parameter graph: which parameters feed which, grouped by module, in update order.

Parameter ``p`` is upstream of ``q`` when a node reading ``p`` is an ancestor
of a node reading ``q`` in some recorded graph. Parameters of one module
(the dotted name minus its last part) form one group, updated by one request
so they stay consistent ("cohesion"). Groups are ordered topologically,
upstream first ("ordered updates"); groups that feed each other both ways
(module A's first prompt feeds module B, which feeds A's second prompt) are
merged, since neither can go first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.graph import InferenceGraph


def module_of(name: str) -> str:
    """The module part of a dotted parameter name (``""`` for the root module)."""
    return name.rpartition(".")[0]


@dataclass(frozen=True, slots=True)
class UpdatePlan:
    """Groups of parameter names in update order, and each name's upstream names."""

    groups: tuple[tuple[str, ...], ...]
    upstream: Mapping[str, tuple[str, ...]]


def _closure(edges: Mapping[Any, set[Any]]) -> dict[Any, set[Any]]:
    """Everything reachable from each key (the key itself only through a cycle)."""
    reach: dict[Any, set[Any]] = {}
    for start in edges:
        seen: set[Any] = set()
        todo = list(edges[start])
        while todo:
            item = todo.pop()
            if item not in seen:
                seen.add(item)
                todo.extend(edges.get(item, ()))
        reach[start] = seen
    return reach


def parameter_edges(
    named: Sequence[tuple[str, Any]], graphs: Iterable[InferenceGraph]
) -> dict[str, set[str]]:
    """``name -> names directly downstream`` over all ``graphs`` (parameters matched by identity)."""
    names = {id(param): name for name, param in named}
    edges: dict[str, set[str]] = {name: set() for name, _ in named}
    for graph in graphs:
        readers: dict[str, list[str]] = {}
        for node in graph.nodes.values():
            for ref in node.parameters:
                name = names.get(id(graph.parameters[ref]))
                if name is not None:
                    readers.setdefault(name, []).append(node.id)
        above = {
            name: set().union(*(graph.ancestors(nid) for nid in nids))
            for name, nids in readers.items()
        }
        for q, ancestors in above.items():
            for p, nids in readers.items():
                if p != q and ancestors.intersection(nids):
                    edges[p].add(q)
    return edges


def plan_updates(named: Sequence[tuple[str, Any]], graphs: Iterable[InferenceGraph]) -> UpdatePlan:
    """Order ``named`` parameters for one optimizer step; ties keep the given order."""
    order = {name: i for i, (name, _) in enumerate(named)}
    edges = parameter_edges(named, graphs)
    reach = _closure(edges)
    upstream = {q: tuple(p for p in order if p != q and q in reach[p]) for q in order}
    # Module groups, then merge groups that reach each other.
    group_of = {name: module_of(name) for name in order}
    group_edges: dict[str, set[str]] = {g: set() for g in group_of.values()}
    for p, downstream in edges.items():
        for q in downstream:
            if group_of[p] != group_of[q]:
                group_edges[group_of[p]].add(group_of[q])
    group_reach = _closure(group_edges)
    merged: dict[str, str] = {}
    for g in group_edges:
        merged[g] = next(
            (h for h in group_edges if h == g or (h in group_reach[g] and g in group_reach[h])), g
        )
    members: dict[str, list[str]] = {}
    for name in order:
        members.setdefault(merged[group_of[name]], []).append(name)
    # Kahn's algorithm over merged groups; the earliest-listed ready group goes first.
    after: dict[str, set[str]] = {g: set() for g in members}
    for g, targets in group_edges.items():
        for h in targets:
            if merged[g] != merged[h]:
                after[merged[g]].add(merged[h])
    indegree = {g: 0 for g in members}
    for targets in after.values():
        for h in targets:
            indegree[h] += 1
    ready = [g for g in members if indegree[g] == 0]
    groups: list[tuple[str, ...]] = []
    while ready:
        ready.sort(key=lambda g: order[members[g][0]])
        g = ready.pop(0)
        groups.append(tuple(members[g]))
        for h in after[g]:
            indegree[h] -= 1
            if indegree[h] == 0:
                ready.append(h)
    return UpdatePlan(tuple(groups), upstream)
