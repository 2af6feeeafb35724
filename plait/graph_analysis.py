"""Graph analysis: the critical path, the structural hash, and the literal encoding they share.

`encode` turns a node argument into a JSON-able form where JSON literals stand
for themselves and everything else is tagged (``{"$ref": ...}``,
``{"$tuple": [...]}``...); the hash and the JSON export both use it, so what
is hashed is exactly what the export shows.

`plait.graph` delegates to this module and to `plait.graph_export`, so both
sit below it and read graphs through the `NodeView` / `GraphView` protocols
(what they use of `GraphNode` / `InferenceGraph`) instead of importing
`plait.graph`. `NodeKind` is a `StrEnum`, so kinds are compared by value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, Protocol

from plait.errors import ConfigError
from plait.values import FormatField, Value, ValueKind, ValueRef


class NodeView(Protocol):
    """What analysis and export read of a `plait.graph.GraphNode`."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def module(self) -> Any: ...
    @property
    def module_path(self) -> str: ...
    @property
    def args(self) -> tuple[Any, ...]: ...
    @property
    def kwargs(self) -> Mapping[str, Any]: ...
    @property
    def dependencies(self) -> tuple[str, ...]: ...
    @property
    def parameters(self) -> tuple[str, ...]: ...
    @property
    def scope(self) -> tuple[str, ...]: ...
    @property
    def side_effects(self) -> bool: ...
    @property
    def live(self) -> bool: ...
    @property
    def source(self) -> str | None: ...
    @property
    def alias(self) -> str | None: ...
    @property
    def control(self) -> tuple[str, ...]: ...
    @property
    def call_key(self) -> str | None: ...


class GraphView(Protocol):
    """What analysis and export read of a `plait.graph.InferenceGraph`."""

    @property
    def nodes(self) -> Mapping[str, NodeView]: ...
    @property
    def input_ids(self) -> tuple[str, ...]: ...
    @property
    def output(self) -> Any: ...
    @property
    def output_ids(self) -> tuple[str, ...]: ...
    @property
    def parameters(self) -> Mapping[str, Any]: ...
    @property
    def input_paths(self) -> Mapping[str, tuple[str, tuple[Any, ...]]]: ...
    def topological_order(self) -> list[str]: ...


HASH_FORMAT = "plait-graph/1"

# Default reprs embed memory addresses, which differ between processes.
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")

# LLM node settings that change the request it sends (or how the reply is parsed).
_LLM_FIELDS = ("alias", "temperature", "max_tokens", "stream")


def qualified_name(obj: Any) -> str:
    """``module.QualName`` of a class or function (``?`` for a missing part)."""
    module = getattr(obj, "__module__", None) or "?"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or "?"
    return f"{module}.{name}"


def encode(x: Any, *, limit: int | None = None) -> Any:
    """A JSON-able, deterministic form of a node argument or literal.

    ``None``, bools, ints, finite floats, strings, lists and dicts with string
    keys stand for themselves. Everything else is a one-key-tagged dict:
    ``$ref`` (`ValueRef`), ``$fstring`` (parts, with ``$field`` for each
    `FormatField`), ``$value`` (kind, ref, payload; ``meta`` is left out),
    ``$tuple``, ``$namedtuple``, ``$dict`` (non-string or ``$``-keys, as
    sorted pairs), ``$set`` (sorted), ``$float`` (nan/inf), ``$bytes`` (hex),
    ``$enum``, ``$dataclass``, ``$object`` (classes and functions, by
    qualified name), ``$cycle`` (a container inside itself), and ``$repr``
    for any other object: its type's qualified name plus ``repr()`` with
    memory addresses removed. ``limit`` cuts ``$repr`` and ``$bytes`` text
    (for display; the hash uses no limit).
    """
    return _encode(x, limit, set())


def _encode(x: Any, limit: int | None, active: set[int]) -> Any:
    if isinstance(x, Enum):
        return {"$enum": qualified_name(type(x)), "name": x.name}
    if x is None or type(x) in (bool, int, str):
        return x
    if type(x) is float:
        return x if math.isfinite(x) else {"$float": repr(x)}
    if isinstance(x, ValueRef):
        return {"$ref": x.ref}
    if isinstance(x, FormatField):
        return {"$field": x.ref, "spec": x.spec, "conversion": x.conversion}
    if isinstance(x, bytes | bytearray):
        return {"$bytes": _cut(x.hex(), limit)}
    if isinstance(x, type) or inspect.isroutine(x):
        return {"$object": qualified_name(x)}
    if id(x) in active:
        return {"$cycle": qualified_name(type(x))}
    active.add(id(x))
    try:
        return _encode_container(x, limit, active)
    finally:
        active.discard(id(x))


def _encode_container(x: Any, limit: int | None, active: set[int]) -> Any:
    def enc(item: Any) -> Any:
        return _encode(item, limit, active)

    if isinstance(x, Value):
        if x.kind is ValueKind.FSTRING:
            return {"$fstring": [enc(part) for part in x.payload]}
        return {"$value": str(x.kind), "ref": x.ref, "payload": enc(x.payload)}
    if isinstance(x, list):
        return [enc(item) for item in x]
    if isinstance(x, tuple):
        items = [enc(item) for item in x]
        if hasattr(type(x), "_fields"):
            return {"$namedtuple": qualified_name(type(x)), "items": items}
        return {"$tuple": items}
    if isinstance(x, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in x):
            return {k: enc(v) for k, v in x.items()}
        pairs = [[enc(k), enc(v)] for k, v in x.items()]
        return {"$dict": sorted(pairs, key=lambda pair: _canonical(pair[0]))}
    if isinstance(x, set | frozenset):
        return {"$set": sorted((enc(item) for item in x), key=_canonical)}
    if dataclasses.is_dataclass(x):
        fields = {f.name: enc(getattr(x, f.name)) for f in dataclasses.fields(x)}
        return {"$dataclass": qualified_name(type(x)), "fields": fields}
    try:
        text = _ADDRESS.sub("", repr(x))
    except Exception as exc:  # a broken __repr__ must not break hashing or export
        text = f"<repr failed: {type(exc).__name__}>"
    return {"$repr": qualified_name(type(x)), "text": _cut(text, limit)}


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _canonical(encoded: Any) -> str:
    return json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def param_refs_by_object(graph: GraphView) -> dict[int, str]:
    """``id(parameter) -> "param:<name>"`` for the graph's parameters (lookup only, never hashed)."""
    return {id(param): ref for ref, param in graph.parameters.items()}


def llm_settings(node: NodeView, param_refs: Mapping[int, str]) -> dict[str, Any]:
    """The request-shaping settings of an LLM node's module, encoded.

    A `Parameter` system prompt appears as ``{"$param": ref}`` (its value is
    recorded once, under the graph's parameters); a parameter the graph does
    not know appears with its current value.
    """
    module = node.module
    settings: dict[str, Any] = {"type": qualified_name(type(module))}
    settings.update({name: encode(getattr(module, name, None)) for name in _LLM_FIELDS})
    prompt = getattr(module, "system_prompt", None)
    if prompt is None or isinstance(prompt, str):
        settings["system_prompt"] = prompt
    elif id(prompt) in param_refs:
        settings["system_prompt"] = {"$param": param_refs[id(prompt)]}
    else:
        settings["system_prompt"] = {
            "$param": None,
            "value": encode(getattr(prompt, "value", prompt)),
        }
    response_format = getattr(module, "response_format", None)
    settings["response_format"] = (
        qualified_name(response_format) if isinstance(response_format, type) else None
    )
    settings["response_schema"] = encode(getattr(module, "response_schema", None))
    settings["tools"] = encode(getattr(module, "tools", None))
    settings["request_options"] = encode(dict(getattr(module, "request_options", None) or {}))
    return settings


def op_identity(node: NodeView) -> dict[str, str]:
    """An op node's name and the qualified name of the function it runs."""
    op = node.module
    return {
        "name": getattr(op, "name", None) or node.name,
        "function": qualified_name(getattr(op, "fn", op)),
    }


def _hash_record(node: NodeView, param_refs: Mapping[int, str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": node.id,
        "kind": str(node.kind),
        "name": node.name,
        "module_path": node.module_path,
        "dependencies": list(node.dependencies),
        "parameters": list(node.parameters),
        "side_effects": node.side_effects,
        "live": node.live,
        "args": [encode(arg) for arg in node.args],
        "kwargs": encode(dict(node.kwargs)),
    }
    if node.kind == "llm":
        record["llm"] = llm_settings(node, param_refs)
    elif node.kind == "op":
        record["op"] = op_identity(node)
    elif node.kind == "module":
        record["module"] = qualified_name(type(node.module))
    return record


def structural_hash(graph: GraphView) -> str:
    """SHA-256 (hex) of the graph's structure and settings; equal graphs hash equal in any process.

    Hashed: a format tag; the input node ids in order with their argument name
    and key path; the output structure (`encode` form); each parameter's ref
    and current value; and, for every node sorted by id: id, kind, name,
    module_path, dependencies, parameter refs, side_effects, live, `encode`d
    args (a list) and kwargs, plus for LLM nodes the module's qualified type, alias,
    temperature, max_tokens, stream, system prompt (text or parameter ref),
    response_format type name, response_schema, tools and request_options;
    for op nodes the op name and the qualified name of its function; for
    other leaf modules their qualified type. Not hashed: input values,
    ``source`` lines, helper ``scope``, parameter descriptions, Value ``meta``.
    The record is serialised as canonical JSON (sorted keys).
    """
    param_refs = param_refs_by_object(graph)
    paths = graph.input_paths
    record = {
        "format": HASH_FORMAT,
        "inputs": [[nid, *map(encode, paths.get(nid, (nid, ())))] for nid in graph.input_ids],
        "output": encode(graph.output),
        "parameters": {
            ref: encode(getattr(param, "value", param))
            for ref, param in sorted(graph.parameters.items())
        },
        "nodes": [_hash_record(graph.nodes[nid], param_refs) for nid in sorted(graph.nodes)],
    }
    return hashlib.sha256(_canonical(record).encode("utf-8")).hexdigest()


def _duration(durations: Mapping[str, float], node_id: str) -> float:
    value = durations.get(node_id, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigError(
            f"durations[{node_id!r}] must be a finite number of seconds >= 0; got {value!r}. "
            "Pass measured or estimated durations, or leave the node out to count it as 0."
        )
    return float(value)


def critical_path(graph: GraphView, durations: Mapping[str, float]) -> tuple[list[str], float]:
    """The heaviest chain of live nodes and its total duration.

    A chain's weight is the sum of ``durations[node_id]`` over its nodes
    (missing ids count 0; ids not in the graph are ignored). Ties go to the
    chain with more nodes, then to the node earlier in `topological_order`.
    Raises `GraphError` naming the cycle if there is one.

        graph.critical_path({"summarize": 1.5, "analyze": 2.0})
    (['text', 'summarize', 'analyze'], 3.5)
    """
    order = [nid for nid in graph.topological_order() if graph.nodes[nid].live]
    position = {nid: i for i, nid in enumerate(order)}
    # Best chain ending at each node, as a sortable key: (weight, length, -position).
    best: dict[str, tuple[float, int, int]] = {}
    via: dict[str, str | None] = {}
    for nid in order:
        node = graph.nodes[nid]
        prev = max(
            (dep for dep in (*node.dependencies, *node.control) if dep in position),
            key=best.__getitem__,
            default=None,
        )
        weight, length = (best[prev][0], best[prev][1]) if prev is not None else (0.0, 0)
        best[nid] = (weight + _duration(durations, nid), length + 1, -position[nid])
        via[nid] = prev
    if not best:
        return [], 0.0
    last = max(best, key=best.__getitem__)
    total = best[last][0]
    end: str | None = last
    path: list[str] = []
    while end is not None:
        path.append(end)
        end = via[end]
    return path[::-1], total
