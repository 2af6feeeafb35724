"""JSON, DOT, Mermaid and table exports of `InferenceGraph`."""

from __future__ import annotations

import json
import re
from typing import Any

import pydot
import pytest

import plait
from plait import GraphNode, LLMInference, Module, NodeKind, ValueRef
from plait.errors import ConfigError
from tests._graph_support import chain_graph, graph_of, node
from tests._models import Pipeline, Reviews

NASTY = 'say "hi"\\\n<script>alert(1)</script> # & `x`'

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_DOT_NODE = re.compile(rf"^\s*{_QUOTED} \[(.*)\];$")
_DOT_EDGE = re.compile(rf"^\s*{_QUOTED} -> {_QUOTED}( \[style=dashed\])?;$")
_DOT_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\s"\]]+)(, |$)')
_DOT_OTHER = re.compile(
    rf"^\s*(digraph {_QUOTED} \{{|rankdir=TB;|node \[.*\];|subgraph {_QUOTED} \{{"
    rf'|label={_QUOTED};|style="rounded,dotted";|\}})$'
)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def _parse_dot(dot: str) -> dict[str, Any]:
    """A strict reader for the DOT subset `to_dot` writes; fails on any other line."""
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, bool]] = []
    clusters: list[str] = []
    depth = 0
    for line in dot.splitlines():
        if match := _DOT_NODE.match(line):
            attrs_text = match.group(2)
            attrs = {m.group(1): m.group(2) for m in _DOT_ATTR.finditer(attrs_text)}
            assert "".join(m.group(0) for m in _DOT_ATTR.finditer(attrs_text)) == attrs_text, line
            assert _unescape(match.group(1)) not in nodes, f"declared twice: {line}"
            nodes[_unescape(match.group(1))] = {
                k: _unescape(v.strip('"')) for k, v in attrs.items()
            }
        elif match := _DOT_EDGE.match(line):
            edges.append(
                (_unescape(match.group(1)), _unescape(match.group(2)), bool(match.group(3)))
            )
        elif match := _DOT_OTHER.match(line):
            depth += line.count("{") - line.strip().count("}")
            if line.strip().startswith("label="):
                clusters.append(_unescape(match.group(4)))
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
        assert depth >= 0
    assert depth == 0, "unbalanced braces"
    assert all(a in nodes and b in nodes for a, b, _ in edges), "edge to an undeclared node"
    return {"nodes": nodes, "edges": edges, "clusters": clusters}


_MERMAID_LABEL = r'"([^"<>]*(?:<br/>[^"<>]*)*)"'
_MERMAID_LINE = re.compile(
    r"^(flowchart TD"
    rf"|\s*(?P<node>n\d+_\w*)(\(\[|\(|\[\[|\[){_MERMAID_LABEL}(\]\)|\)|\]\]|\])"
    rf"|\s*subgraph g\d+\[{_MERMAID_LABEL}\]|\s*end"
    r"|\s*(?P<src>n\d+_\w*) (?P<arrow>-->|-\.->) (?P<dst>n\d+_\w*)"
    r"|\s*classDef (dead|output) [\w:#,. -]+|\s*class (n\d+_\w*,)*n\d+_\w* (dead|output))$"
)


def _check_mermaid(text: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    """Declared node ids and edges; fails on any line outside the subset `to_mermaid` writes."""
    declared: set[str] = set()
    edges = []
    opened = 0
    for line in text.splitlines():
        match = _MERMAID_LINE.match(line)
        assert match, f"unexpected Mermaid line: {line!r}"
        if match.group("node"):
            declared.add(match.group("node"))
        if match.group("src"):
            edges.append((match.group("src"), match.group("arrow"), match.group("dst")))
        opened += line.strip().startswith("subgraph") - (line.strip() == "end")
    assert opened == 0
    assert all(a in declared and b in declared for a, _, b in edges)
    return declared, edges


def _nasty_graph() -> plait.InferenceGraph:
    nodes = [
        GraphNode("text", NodeKind.INPUT, "text"),
        GraphNode(
            NASTY, NodeKind.OP, NASTY, args=(ValueRef("text"), NASTY), dependencies=("text",)
        ),
        GraphNode("unused", NodeKind.OP, "unused", dependencies=("text",), live=False),
    ]
    return graph_of(*nodes, outputs=(NASTY,))


def test_dot_of_the_anchor_pipeline():
    parsed = _parse_dot(plait.trace(Pipeline(), "x").to_dot())
    assert list(parsed["nodes"]) == ["text", "summarize", "analyze", "word_count"]
    assert parsed["edges"] == [
        ("text", "summarize", False),
        ("summarize", "analyze", False),
        ("summarize", "word_count", False),
    ]
    assert parsed["nodes"]["text"]["shape"] == "ellipse"
    assert parsed["nodes"]["analyze"] == {
        "label": "analyze\nllm: smart\nreads: instructions",
        "shape": "box",
        "style": "rounded",
        "peripheries": "2",
    }
    assert "peripheries" not in parsed["nodes"]["summarize"]


def test_dot_escapes_quotes_newlines_and_markup():
    dot = _nasty_graph().to_dot()
    parsed = _parse_dot(dot)
    assert NASTY in parsed["nodes"]
    assert parsed["nodes"][NASTY]["label"].startswith(NASTY.split("\n")[0])
    assert ("text", NASTY, False) in parsed["edges"]
    assert '"say \\"hi\\"\\\\\\n<script>' in dot


def test_dot_marks_dead_nodes_and_edges_dashed():
    parsed = _parse_dot(_nasty_graph().to_dot(group_by=None))
    assert parsed["nodes"]["unused"]["style"] == "dashed"
    assert ("text", "unused", True) in parsed["edges"]


def test_dot_groups_by_module_path_and_by_helper_scope():
    graph = plait.trace(Reviews(), "t", "e")
    by_module = _parse_dot(graph.to_dot(group_by="module"))
    assert by_module["clusters"] == ["pipeline", "pipeline.analyzer"]
    by_scope = _parse_dot(graph.to_dot(group_by="scope"))
    assert by_scope["clusters"] == ["add_review#1", "add_review#2", "add_review#3"]
    assert _parse_dot(graph.to_dot(group_by=None))["clusters"] == []
    dot = graph.to_dot(group_by="scope")
    cluster = dot.split('label="add_review#2";')[1].split("}")[0]
    assert '"router_2"' in cluster and '"pipeline.analyzer.judge_1"' in cluster
    assert '"router_1"' not in cluster


def test_dot_parses_with_pydot():
    for graph in (plait.trace(Reviews(), "t", "e"), _nasty_graph()):
        for group_by in ("module", "scope", None):
            (parsed,) = pydot.graph_from_dot_data(graph.to_dot(group_by=group_by))
            edges = {(e.get_source(), e.get_destination()) for e in parsed.get_edges()}
            expected = {(dep, n.id) for n in graph.nodes.values() for dep in n.dependencies}
            assert len(edges) == len(expected)


def test_unknown_grouping_is_refused():
    graph = plait.trace(Pipeline(), "x")
    with pytest.raises(
        ConfigError, match="group_by must be 'module', 'scope' or None; got 'helper'"
    ):
        graph.to_dot(group_by="helper")
    with pytest.raises(ConfigError, match="group_by"):
        graph.to_mermaid(group_by="modules")


def test_mermaid_of_a_grouped_graph():
    text = plait.trace(Reviews(), "t", "e").to_mermaid()
    declared, edges = _check_mermaid(text)
    assert len(declared) == 9
    assert ("n1_extra", "-.->", "n2_router") in edges
    assert ("n3_router_1", "-->", "n4_pipeline_analyzer_judge") in edges
    assert '  subgraph g0["pipeline"]\n    subgraph g1["pipeline.analyzer"]\n' in text
    assert "  class n1_extra,n2_router dead\n" in text
    assert text.startswith('flowchart TD\n  n0_text(["text<br/>input"])\n')


def test_mermaid_sanitizes_ids_and_escapes_labels():
    text = _nasty_graph().to_mermaid(group_by=None)
    declared, edges = _check_mermaid(text)
    nasty_id = "n1_say__hi____script_alert_1___script_______x_"
    assert declared == {"n0_text", nasty_id, "n2_unused"}
    assert edges == [("n0_text", "-->", nasty_id), ("n0_text", "-.->", "n2_unused")]
    assert "<script>" not in text
    assert "say #34;hi#34;\\<br/>#60;script#62;alert(1)#60;/script#62; #35; #38; #96;x#96;" in text


def test_mermaid_ids_stay_unique_when_sanitized_names_collide():
    graph = graph_of(node("a.b", kind=NodeKind.INPUT), node("a_b", "a.b"), outputs=("a_b",))
    declared, edges = _check_mermaid(graph.to_mermaid())
    assert declared == {"n0_a_b", "n1_a_b"}
    assert edges == [("n0_a_b", "-->", "n1_a_b")]


def test_nested_helper_scopes_nest_groups():
    deep = GraphNode("deep", NodeKind.OP, "deep", scope=("outer#1", "middle#1", "inner#1"))
    graph = graph_of(deep, outputs=("deep",))
    assert _parse_dot(graph.to_dot(group_by="scope"))["clusters"] == [
        "outer#1",
        "middle#1",
        "inner#1",
    ]
    text = graph.to_mermaid(group_by="scope")
    _check_mermaid(text)
    assert '      subgraph g2["inner#35;1"]\n        n0_deep["deep<br/>op: deep"]\n' in text


def test_mermaid_groups_by_scope():
    text = plait.trace(Reviews(), "t", "e").to_mermaid(group_by="scope")
    _check_mermaid(text)
    assert re.findall(r'subgraph g\d+\["([^"]*)"\]', text) == [
        "add_review#35;1",
        "add_review#35;2",
        "add_review#35;3",
    ]


def test_json_lists_nodes_inputs_outputs_and_parameters():
    graph = plait.trace(Pipeline(), "x")
    data = json.loads(graph.to_json())
    assert data == graph.to_dict()
    assert data["format"] == "plait.InferenceGraph/1"
    assert data["hash"] == graph.structural_hash()
    assert data["inputs"] == [{"id": "text", "argument": "text", "path": []}]
    assert data["outputs"] == ["analyze", "word_count"]
    assert data["output"] == {"analysis": {"$ref": "analyze"}, "words": {"$ref": "word_count"}}
    assert data["parameters"] == [
        {
            "ref": "param:instructions",
            "name": "instructions",
            "description": "Style of the analysis.",
            "requires_grad": True,
        }
    ]
    analyze, count = data["nodes"][2], data["nodes"][3]
    assert analyze["args"] == [
        {
            "$fstring": [
                "Summary:\n",
                {"$field": "summarize", "spec": "", "conversion": ""},
                "\n\nAnalysis:",
            ]
        }
    ]
    assert analyze["llm"]["system_prompt"] == {"$param": "param:instructions"}
    assert (analyze["alias"], analyze["parameters"], analyze["live"]) == (
        "smart",
        ["param:instructions"],
        True,
    )
    assert count["op"] == {"name": "word_count", "function": "tests._models.word_count"}
    assert count["kwargs"] == {"unit": "words"}


def test_json_is_stable_across_traces():
    assert plait.trace(Pipeline(), "x").to_json() == plait.trace(Pipeline(), "other").to_json()


def test_json_never_holds_parameter_values_or_credentials():
    module = Pipeline(
        instructions="PARAM-VALUE", extra_headers={"Authorization": "Bearer sk-SECRET"}
    )
    text = plait.trace(module, "x").to_json()
    assert "PARAM-VALUE" not in text and "sk-SECRET" not in text
    assert json.loads(text)["nodes"][2]["llm"]["request_options"] == {
        "extra_headers": {"Authorization": "***"}
    }


class _Opaque:
    pass


def test_json_renders_odd_literals_safely():
    module = Pipeline(unit={"when": float("nan"), "raw": b"\x01", "obj": _Opaque(), 2: "x"})
    data = json.loads(plait.trace(module, "x").to_json())
    (pairs,) = data["nodes"][3]["kwargs"]["unit"].values()
    assert [2, "x"] in pairs
    assert ["when", {"$float": "nan"}] in pairs and ["raw", {"$bytes": "01"}] in pairs
    assert [
        "obj",
        {"$repr": f"{__name__}._Opaque", "text": f"<{__name__}._Opaque object>"},
    ] in pairs


def test_json_escapes_nasty_ids():
    data = json.loads(_nasty_graph().to_json())
    assert data["nodes"][1]["id"] == NASTY
    assert data["nodes"][1]["args"] == [{"$ref": "text"}, NASTY]


def test_format_table_lists_every_node_and_marks_dead_ones():
    table = plait.trace(Reviews(), "t", "e").format_table()
    lines = table.splitlines()
    assert lines[0] == (
        "InferenceGraph: 9 nodes (2 dead) | inputs: text, extra | outputs: pipeline.analyzer.judge, "
        "pipeline.analyzer.judge_1, pipeline.analyzer.judge_2, text | parameters: -"
    )
    assert lines[1].split() == [
        "id",
        "kind",
        "target",
        "module_path",
        "scope",
        "dependencies",
        "parameters",
    ]
    assert lines[3].split() == ["x", "extra", "input", "-", "-", "-", "-", "-"]
    assert lines[4].split() == ["x", "router", "llm", "fast", "router", "-", "extra", "-"]
    assert lines[6].split() == [
        "pipeline.analyzer.judge",
        "llm",
        "smart",
        "pipeline.analyzer.judge",
        "add_review#1",
        "router_1",
        "-",
    ]
    assert len(lines) == 2 + 9 + 1
    assert lines[-1] == "x = dead: reaches no output and has no side effects, so it is not run"


def test_repr_shows_parameters_and_targets():
    text = repr(plait.trace(Pipeline(), "x"))
    assert text.splitlines()[0].endswith(
        "| outputs: analyze, word_count | parameters: instructions"
    )
    assert text.splitlines()[4].split() == [
        "analyze",
        "llm",
        "smart",
        "analyze",
        "-",
        "summarize",
        "instructions",
    ]
    assert str(plait.trace(Pipeline(), "x")) == text


def test_table_cells_escape_newlines():
    table = _nasty_graph().format_table()
    assert len(table.splitlines()) == 2 + 3 + 1
    assert 'say "hi"\\\\n<script>' in table


def test_graph_node_target():
    graph = plait.trace(Pipeline(), "x")
    assert [graph[n].target for n in graph.nodes] == ["", "fast", "smart", "word_count"]

    class Leaf(Module):
        _is_leaf = True

        def forward(self, x: Any) -> Any:
            return x

    class Outer(Module):
        def __init__(self) -> None:
            super().__init__()
            self.leaf = Leaf()
            self.llm = LLMInference("fast")

        def forward(self, x: Any) -> Any:
            return self.llm(self.leaf(x))

    assert plait.trace(Outer(), "x")["leaf"].target == "Leaf"


def test_exports_of_a_10000_node_graph():
    graph = chain_graph(10_000)
    text = repr(graph)
    assert len(text.splitlines()) == 2 + 20 + 1
    assert text.splitlines()[-1] == "  ... 9980 more nodes (graph.format_table() shows all)"
    assert len(graph.format_table().splitlines()) == 2 + 10_000
    assert len(json.loads(graph.to_json(indent=None))["nodes"]) == 10_000
    parsed = _parse_dot(graph.to_dot())
    assert (len(parsed["nodes"]), len(parsed["edges"])) == (10_000, 19_996)
    declared, edges = _check_mermaid(graph.to_mermaid())
    assert (len(declared), len(edges)) == (10_000, 19_996)
