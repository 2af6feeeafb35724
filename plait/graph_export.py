"""Graph exports: JSON, Graphviz DOT, Mermaid, and a plain-text node table.

Every export lists nodes in creation order and escapes every piece of text it
embeds (ids, labels, group names), so node names or literals containing
quotes, newlines or ``<script>`` cannot break the output. Groups come from
``group_by``: ``"module"`` clusters nodes by the module whose ``forward``
made them (nested along the dotted path), ``"scope"`` by helper-function
scope (a helper called twice gives two groups), ``None`` draws no groups.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from plait._tree import redact
from plait.errors import ConfigError
from plait.graph_analysis import (
    GraphView,
    NodeView,
    encode,
    llm_settings,
    op_identity,
    param_refs_by_object,
    qualified_name,
    structural_hash,
)

JSON_FORMAT = "plait.InferenceGraph/1"
GROUPINGS = ("module", "scope", None)

# Display cut-offs: long literals and labels are shortened, never the ids.
_LITERAL_LIMIT = 200
_LABEL_LINE = 60
_CELL = 40
_MERMAID_ID = re.compile(r"[^A-Za-z0-9_]")
# Mermaid entity codes (decimal): '#' first, since the others introduce it.
_MERMAID_ESCAPES = (
    ("#", "#35;"),
    ("&", "#38;"),
    ('"', "#34;"),
    ("<", "#60;"),
    (">", "#62;"),
    ("`", "#96;"),
)


def node_target(node: NodeView) -> str:
    """What a node calls: endpoint alias (LLM), op name (OP), module type (MODULE), "" for inputs."""
    if node.kind == "llm":
        return str(getattr(node.module, "alias", "") or "")
    if node.kind == "op":
        return str(getattr(node.module, "name", None) or node.name)
    if node.kind == "module":
        return type(node.module).__name__
    return ""


def _param_name(ref: str) -> str:
    return ref.removeprefix("param:")


def _node_dict(node: NodeView, param_refs: dict[int, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": node.id,
        "kind": str(node.kind),
        "name": node.name,
        "target": node_target(node),
        "module_path": node.module_path,
        "scope": list(node.scope),
        "dependencies": list(node.dependencies),
        "parameters": list(node.parameters),
        "live": node.live,
        "side_effects": node.side_effects,
        "alias": node.alias,
        "op": op_identity(node) if node.kind == "op" else None,
        "args": [encode(arg, limit=_LITERAL_LIMIT) for arg in node.args],
        "kwargs": encode(dict(node.kwargs), limit=_LITERAL_LIMIT),
        "source": node.source,
    }
    if node.kind == "llm":
        entry["llm"] = redact(llm_settings(node, param_refs))
    elif node.kind == "module":
        entry["module_type"] = qualified_name(type(node.module))
    return entry


def to_dict(graph: GraphView) -> dict[str, Any]:
    """The graph as plain JSON-able data (see `to_json`)."""
    param_refs = param_refs_by_object(graph)
    paths = graph.input_paths
    return {
        "format": JSON_FORMAT,
        "hash": structural_hash(graph),
        "inputs": [
            {
                "id": nid,
                "argument": paths.get(nid, (nid, ()))[0],
                "path": encode(list(paths.get(nid, (nid, ()))[1])),
            }
            for nid in graph.input_ids
        ],
        "outputs": list(graph.output_ids),
        "output": encode(graph.output, limit=_LITERAL_LIMIT),
        "parameters": [
            {
                "ref": ref,
                "name": getattr(param, "name", None) or _param_name(ref),
                "description": getattr(param, "description", None),
                "requires_grad": getattr(param, "requires_grad", None),
            }
            for ref, param in graph.parameters.items()
        ],
        "nodes": [_node_dict(node, param_refs) for node in graph.nodes.values()],
    }


def to_json(graph: GraphView, *, indent: int | None = 2) -> str:
    """The graph as JSON: same graph, same text.

    Arguments use the tagged form of `plait.graph_analysis.encode` (``$ref``,
    ``$fstring``...), with long object reprs shortened. Parameters are listed
    by name and description only (values are not exported); request options
    whose key looks like a credential are replaced by ``"***"``.
    """
    return json.dumps(to_dict(graph), indent=indent, allow_nan=False)


class _Group:
    """One level of the group tree: its label, its nodes, and its subgroups in first-seen order."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.nodes: list[NodeView] = []
        self.children: dict[str, _Group] = {}


def _group_key(node: NodeView, group_by: str | None) -> tuple[str, ...]:
    if group_by == "scope":
        return node.scope
    if group_by == "module" and node.module_path:
        parts = node.module_path.split(".")
        # An LLM or leaf-module node *is* the module at its path: group it with its parent.
        return tuple(parts[:-1]) if node.kind in ("llm", "module") else tuple(parts)
    return ()


def _group_tree(graph: GraphView, group_by: str | None) -> _Group:
    if group_by not in GROUPINGS:
        raise ConfigError(f"group_by must be 'module', 'scope' or None; got {group_by!r}")
    root = _Group("")
    for node in graph.nodes.values():
        group = root
        key = _group_key(node, group_by)
        for depth, part in enumerate(key):
            if part not in group.children:
                label = ".".join(key[: depth + 1]) if group_by == "module" else part
                group.children[part] = _Group(label)
            group = group.children[part]
        group.nodes.append(node)
    return root


def _label_lines(node: NodeView) -> list[str]:
    lines = [node.id]
    target = node_target(node)
    lines.append(f"{node.kind}: {target}" if target else str(node.kind))
    if node.parameters:
        lines.append("reads: " + ", ".join(_param_name(ref) for ref in node.parameters))
    return [_shorten(line, _LABEL_LINE) for line in lines]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_DOT_SHAPES = {"input": "ellipse", "llm": "box", "op": "box", "module": "box3d"}


def _dot_quote(text: str) -> str:
    """A DOT double-quoted string; ``\\n`` in it is a centred line break when used as a label."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def _dot_node(node: NodeView, outputs: set[str]) -> str:
    styles = ["rounded"] if node.kind == "llm" else []
    if not node.live:
        styles.append("dashed")
    attrs = {
        "label": _dot_quote("\n".join(_label_lines(node))),
        "shape": _DOT_SHAPES.get(str(node.kind), "box"),
    }
    if styles:
        attrs["style"] = _dot_quote(",".join(styles))
    if node.id in outputs:
        attrs["peripheries"] = "2"
    if not node.live:
        attrs["fontcolor"] = "gray40"
    body = ", ".join(f"{key}={value}" for key, value in attrs.items())
    return f"{_dot_quote(node.id)} [{body}];"


def to_dot(graph: GraphView, *, group_by: str | None = "module", name: str = "plait") -> str:
    """Graphviz DOT source: inputs as ellipses, outputs with a double outline, dead nodes dashed.

    Groups (see the module docstring) become nested ``cluster`` subgraphs.
    """
    outputs = set(graph.output_ids)
    lines = [
        f"digraph {_dot_quote(name)} {{",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=10];',
    ]
    counter = itertools.count()

    def emit(group: _Group, indent: str) -> None:
        lines.extend(indent + _dot_node(node, outputs) for node in group.nodes)
        for child in group.children.values():
            lines.append(f"{indent}subgraph {_dot_quote(f'cluster_{next(counter)}')} {{")
            lines.append(f"{indent}  label={_dot_quote(child.label)};")
            lines.append(f'{indent}  style="rounded,dotted";')
            emit(child, indent + "  ")
            lines.append(f"{indent}}}")

    emit(_group_tree(graph, group_by), "  ")
    for node, dep in _edges(graph):
        dashed = " [style=dashed]" if not (node.live and graph.nodes[dep].live) else ""
        lines.append(f"  {_dot_quote(dep)} -> {_dot_quote(node.id)}{dashed};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edges(graph: GraphView) -> Iterator[tuple[NodeView, str]]:
    """(node, dependency id) for every edge whose ends are both in the graph."""
    for node in graph.nodes.values():
        for dep in node.dependencies:
            if dep in graph.nodes:
                yield node, dep


_MERMAID_SHAPES: dict[str, tuple[str, str]] = {
    "input": ("([", "])"),
    "llm": ("(", ")"),
    "op": ("[", "]"),
    "module": ("[[", "]]"),
}


def mermaid_ids(graph: GraphView) -> dict[str, str]:
    """Node id -> Mermaid-safe id (``n<index>_<id with other characters as _>``), unique by index."""
    return {nid: f"n{i}_{_MERMAID_ID.sub('_', nid)}" for i, nid in enumerate(graph.nodes)}


def _mermaid_text(lines: list[str]) -> str:
    escaped = []
    for line in lines:
        for char, code in _MERMAID_ESCAPES:
            line = line.replace(char, code)
        escaped.append(line.replace("\r", "").replace("\n", "<br/>"))
    return '"' + "<br/>".join(escaped) + '"'


def to_mermaid(graph: GraphView, *, group_by: str | None = "module") -> str:
    """Mermaid ``flowchart TD`` source; groups become nested subgraphs, dead nodes dashed."""
    ids = mermaid_ids(graph)
    lines = ["flowchart TD"]
    counter = itertools.count()

    def emit(group: _Group, indent: str) -> None:
        for node in group.nodes:
            opening, closing = _MERMAID_SHAPES.get(str(node.kind), ("[", "]"))
            lines.append(
                f"{indent}{ids[node.id]}{opening}{_mermaid_text(_label_lines(node))}{closing}"
            )
        for child in group.children.values():
            lines.append(f"{indent}subgraph g{next(counter)}[{_mermaid_text([child.label])}]")
            emit(child, indent + "  ")
            lines.append(f"{indent}end")

    emit(_group_tree(graph, group_by), "  ")
    for node, dep in _edges(graph):
        arrow = "-->" if node.live and graph.nodes[dep].live else "-.->"
        lines.append(f"  {ids[dep]} {arrow} {ids[node.id]}")
    lines.append("  classDef dead stroke-dasharray:5 5,color:#888")
    lines.append("  classDef output stroke-width:3px")
    for name, chosen in (
        ("dead", [ids[n.id] for n in graph.nodes.values() if not n.live]),
        ("output", [ids[nid] for nid in graph.output_ids]),
    ):
        if chosen:
            lines.append(f"  class {','.join(chosen)} {name}")
    return "\n".join(lines) + "\n"


_COLUMNS: tuple[tuple[str, Callable[[NodeView], str]], ...] = (
    ("id", lambda n: n.id),
    ("kind", lambda n: str(n.kind)),
    ("target", node_target),
    ("module_path", lambda n: n.module_path),
    ("scope", lambda n: "/".join(n.scope)),
    ("dependencies", lambda n: ", ".join(n.dependencies)),
    ("parameters", lambda n: ", ".join(_param_name(ref) for ref in n.parameters)),
)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _cell(text: str) -> str:
    return _shorten(_one_line(text), _CELL) if text else "-"


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(map(_one_line, names[:limit])) or "-"
    return shown + (f", ... (+{len(names) - limit})" if len(names) > limit else "")


def summary(graph: GraphView) -> str:
    """One line: node count, dead count, inputs, outputs and parameters (long lists cut)."""
    dead = sum(1 for node in graph.nodes.values() if not node.live)
    return (
        f"InferenceGraph: {len(graph.nodes)} nodes ({dead} dead) | "
        f"inputs: {_names(list(graph.input_ids))} | outputs: {_names(list(graph.output_ids))} | "
        f"parameters: {_names([_param_name(ref) for ref in graph.parameters])}"
    )


def format_table(graph: GraphView, *, max_rows: int | None = None) -> str:
    """The summary line, then one row per node (creation order); dead nodes marked ``x``.

    Like torch.fx's ``print_tabular``, as a string. ``max_rows`` keeps the
    first rows and says how many were left out.
    """
    nodes = list(graph.nodes.values())
    shown = nodes if max_rows is None else nodes[:max_rows]
    columns = _COLUMNS
    if any(node.control for node in nodes):  # recorded while it ran: say what came before
        columns = (*columns, ("after (control)", lambda n: ", ".join(n.control)))
    header = [name for name, _ in columns]
    rows = [[_cell(get(node)) for _, get in columns] for node in shown]
    marks = [" " if node.live else "x" for node in shown]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(mark: str, cells: list[str]) -> str:
        return (
            f"{mark} " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        )

    out = [summary(graph), line(" ", header)]
    out.extend(line(mark, row) for mark, row in zip(marks, rows, strict=True))
    if len(nodes) > len(shown):
        out.append(f"  ... {len(nodes) - len(shown)} more nodes (graph.format_table() shows all)")
    if any(mark == "x" for mark in marks):
        out.append("x = dead: reaches no output and has no side effects, so it is not run")
    return "\n".join(out)
