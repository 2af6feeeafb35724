"""Shared pipelines and helpers for the tracing tests.

`run_traced` runs a traced graph the way the executor does, in plain Python:
it is the reference the tracing tests compare eager ``forward`` calls with,
independent of the real (async, resource-managed) runtime.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from plait import InferenceGraph, Module, NodeKind, trace
from plait._tree import tree_map
from plait.values import Value, ValueKind, ValueRef, render_fstring, unwrap, valueify


class Compose(Module):
    """A module whose forward is a given function of its inputs."""

    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


class Scripted(Module):
    """A leaf module standing in for a model: one node when traced, a canned reply eagerly."""

    _is_leaf = True

    def __init__(self, reply: Any = None) -> None:
        super().__init__()
        self.reply = reply

    def forward(self, prompt: Any) -> Any:
        return f"<{prompt}>" if self.reply is None else self.reply


def traced(module: Module, /, *args: Any, **kwargs: Any) -> InferenceGraph:
    """`trace`, plus the graph's own invariant check."""
    graph = trace(module, *args, **kwargs)
    graph.validate()
    return graph


def run_traced(module: Module, /, *args: Any, **kwargs: Any) -> Any:
    """Trace ``module`` and run the graph's live nodes in order; the output as plain payloads."""
    graph = traced(module, *args, **kwargs)
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    inputs = {}
    for node_id, (name, path) in graph.input_paths.items():
        value = bound.arguments[name]
        for key in path:
            value = value[key]
        inputs[node_id] = value
    return interpret(graph, inputs)


def interpret(graph: InferenceGraph, inputs: dict[str, Any]) -> Any:
    """Run ``graph`` on ``inputs`` (input node id -> payload): ops and leaf modules only."""
    outputs: dict[str, Value] = {}

    def resolve(ref: str) -> Value:
        return graph.parameters[ref].lift() if ref.startswith("param:") else outputs[ref]

    def argument(x: Any) -> Any:
        if isinstance(x, ValueRef):
            return resolve(x.ref)
        if isinstance(x, Value) and x.kind is ValueKind.FSTRING:
            return valueify(render_fstring(x, resolve))
        return x

    for node_id in graph.topological_order():
        node = graph[node_id]
        if not node.live:
            continue
        if node.kind is NodeKind.INPUT:
            outputs[node_id] = valueify(inputs[node_id])
            continue
        args, kwargs = tree_map(argument, (node.args, dict(node.kwargs)))
        if node.kind is NodeKind.OP:
            fn = node.module.fn
            if not node.module.takes_values:
                args, kwargs = unwrap((args, kwargs))
        else:
            fn = node.module.forward
            args, kwargs = unwrap((args, kwargs))
        result = fn(*args, **kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        outputs[node_id] = valueify(result)
    return unwrap(tree_map(argument, graph.output))


def line_of(path: str, snippet: str) -> int:
    """The line number of the one line of ``path`` (other than line_of calls) with ``snippet``."""
    lines = [
        i
        for i, line in enumerate(Path(path).read_text().splitlines(), 1)
        if snippet in line and "line_of(" not in line
    ]
    assert len(lines) == 1, f"{snippet!r} occurs on lines {lines} of {path}"
    return lines[0]
