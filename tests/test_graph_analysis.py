"""Critical path and structural hash of `InferenceGraph`."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import plait
from plait import Module, NodeKind
from plait.errors import ConfigError, GraphError
from plait.graph_analysis import encode
from tests._graph_support import chain_graph, graph_of, node, other_word_count
from tests._models import Pipeline, Reviews, word_count

ROOT = Path(__file__).resolve().parents[1]


def _hash(module: Module, text: str = "input text") -> str:
    return plait.trace(module, text).structural_hash()


def test_critical_path_of_a_chain_is_the_whole_chain():
    graph = graph_of(node("a", kind=NodeKind.INPUT), node("b", "a"), node("c", "b"), outputs=("c",))
    assert graph.critical_path({"a": 0.5, "b": 1.0, "c": 2.0}) == (["a", "b", "c"], 3.5)


def test_critical_path_of_a_diamond_takes_the_slower_branch():
    graph = graph_of(
        node("a", kind=NodeKind.INPUT),
        node("b", "a"),
        node("c", "a"),
        node("d", "b", "c"),
        outputs=("d",),
    )
    assert graph.critical_path({"b": 2.0, "c": 5.0, "d": 1.0}) == (["a", "c", "d"], 6.0)
    assert graph.critical_path({"b": 5.0, "c": 2.0, "d": 1.0}) == (["a", "b", "d"], 6.0)


def test_critical_path_of_a_fan_out_ends_at_the_heaviest_leaf():
    graph = graph_of(
        node("a", kind=NodeKind.INPUT),
        node("b", "a"),
        node("c", "a"),
        node("d", "a"),
        outputs=("b", "c", "d"),
    )
    assert graph.critical_path({"a": 1, "b": 2, "c": 4, "d": 3}) == (["a", "c"], 5.0)


def test_critical_path_ties_go_to_the_earlier_node():
    graph = graph_of(
        node("a", kind=NodeKind.INPUT),
        node("b", "a"),
        node("c", "a"),
        node("d", "b", "c"),
        outputs=("d",),
    )
    assert graph.critical_path({"b": 2.0, "c": 2.0}) == (["a", "b", "d"], 2.0)
    # Listing the dependencies the other way round does not change the answer.
    flipped = graph_of(
        node("a", kind=NodeKind.INPUT),
        node("b", "a"),
        node("c", "a"),
        node("d", "c", "b"),
        outputs=("d",),
    )
    assert flipped.critical_path({"b": 2.0, "c": 2.0}) == (["a", "b", "d"], 2.0)


def test_critical_path_with_equal_weights_prefers_more_nodes():
    graph = graph_of(
        node("x", kind=NodeKind.INPUT),
        node("y", "x"),
        node("z", "y"),
        node("w"),
        outputs=("z", "w"),
    )
    assert graph.critical_path({}) == (["x", "y", "z"], 0.0)


def test_critical_path_skips_dead_nodes_and_ignores_unknown_ids():
    graph = graph_of(
        node("a", kind=NodeKind.INPUT),
        node("b", "a"),
        node("slow", "a", live=False),
        outputs=("b",),
    )
    assert graph.critical_path({"a": 1, "b": 1, "slow": 100, "elsewhere": 50}) == (["a", "b"], 2.0)


def test_critical_path_of_an_empty_graph_is_empty():
    assert graph_of().critical_path({}) == ([], 0.0)


def test_critical_path_of_a_traced_pipeline():
    graph = plait.trace(Pipeline(), "text")
    path, total = graph.critical_path({"summarize": 1.5, "analyze": 2.0, "word_count": 0.1})
    assert (path, total) == (["text", "summarize", "analyze"], 3.5)


def test_critical_path_rejects_bad_durations():
    graph = graph_of(node("a", kind=NodeKind.INPUT), outputs=("a",))
    for bad in (-1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ConfigError, match=r"durations\['a'\] must be a finite number"):
            graph.critical_path({"a": bad})


def test_critical_path_names_the_cycle():
    graph = graph_of(node("a", "c"), node("b", "a"), node("c", "b"), outputs=("c",))
    with pytest.raises(GraphError, match="cycle: a -> b -> c -> a"):
        graph.critical_path({})


def test_hash_is_sha256_hex_and_equal_for_equal_modules():
    first, second = _hash(Pipeline()), _hash(Pipeline())
    assert first == second
    assert len(first) == 64 and int(first, 16) >= 0


def test_hash_is_the_same_in_a_fresh_process():
    code = "from tests._models import Pipeline; import plait; print(plait.trace(Pipeline(), 'x').structural_hash())"
    hashes = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        hashes.add(done.stdout.strip())
    assert hashes == {_hash(Pipeline())}


def test_hash_ignores_input_values():
    assert _hash(Pipeline(), "one text") == _hash(Pipeline(), "a completely different text")


class _Direct(Module):
    def __init__(self) -> None:
        super().__init__()
        self.summarize = plait.LLMInference("fast", system_prompt="s")

    def forward(self, text: str) -> Any:
        return self.summarize(text)


class _ViaHelper(_Direct):
    def forward(self, text: str) -> Any:
        return _call(self.summarize, text)


def _call(llm: Any, text: str) -> Any:
    return llm(text)


def test_hash_ignores_source_lines_and_helper_scope():
    direct, helper = plait.trace(_Direct(), "x"), plait.trace(_ViaHelper(), "x")
    assert direct["summarize"].source != helper["summarize"].source
    assert (direct["summarize"].scope, helper["summarize"].scope) == ((), ("_call#1",))
    assert direct.structural_hash() == helper.structural_hash()


class _Opaque:
    """A literal with the default repr, which includes a memory address."""


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"_Named({self.name!r})"


@dataclasses.dataclass(frozen=True)
class _Unit:
    name: str


def test_non_json_literals_hash_deterministically():
    for make in (
        _Opaque,
        lambda: {3, 1, 2},
        lambda: b"\x00\xff",
        lambda: float("nan"),
        lambda: _Unit("w"),
    ):
        assert _hash(Pipeline(unit=make())) == _hash(Pipeline(unit=make()))
    assert _hash(Pipeline(unit=_Named("a"))) != _hash(Pipeline(unit=_Named("b")))
    assert _hash(Pipeline(unit=_Unit("a"))) != _hash(Pipeline(unit=_Unit("b")))


def test_encode_tags_what_json_cannot_say():
    assert encode({"k": (1, [2.5, None])}) == {"k": {"$tuple": [1, [2.5, None]]}}
    assert encode({1: "a"}) == {"$dict": [[1, "a"]]}
    assert encode(frozenset({"b", "a"})) == {"$set": ["a", "b"]}
    assert encode(float("inf")) == {"$float": "inf"}
    assert encode(NodeKind.LLM) == {"$enum": "plait.graph.NodeKind", "name": "LLM"}
    assert encode(_Unit("w")) == {"$dataclass": f"{__name__}._Unit", "fields": {"name": "w"}}
    assert encode(len) == {"$object": "builtins.len"}
    assert encode(_Opaque()) == {
        "$repr": f"{__name__}._Opaque",
        "text": f"<{__name__}._Opaque object>",
    }
    loop: list[Any] = []
    loop.append(loop)
    assert encode(loop) == [{"$cycle": "builtins.list"}]


@dataclasses.dataclass
class _Verdict:
    verdict: str


_VARIANTS: dict[str, dict[str, Any]] = {
    "system prompt": {"summary_prompt": "Summarize in one line."},
    "parameter value": {"instructions": "Be thorough."},
    "alias": {"analyze_alias": "fast"},
    "temperature": {"temperature": 0.7},
    "max_tokens": {"max_tokens": 64},
    "response schema": {"response_format": _Verdict},
    "tools": {"tools": [{"name": "search", "parameters": {"type": "object"}}]},
    "request options": {"seed": 7},
    "stream": {"stream": True},
    "op identity": {"counter": other_word_count},
    "literal arg": {"unit": "letters"},
    "literal structure": {"unit": ("words",)},
}


@pytest.mark.parametrize("change", sorted(_VARIANTS))
def test_hash_changes_with_each_setting(change: str):
    base = _hash(Pipeline())
    assert _hash(Pipeline(**_VARIANTS[change])) != base


def test_list_and_tuple_literals_hash_differently():
    assert _hash(Pipeline(unit=["words"])) != _hash(Pipeline(unit=("words",)))
    assert _hash(Pipeline(unit={"a": 1, "b": 2})) == _hash(Pipeline(unit={"b": 2, "a": 1}))


def test_changed_options_values_change_the_hash():
    assert _hash(Pipeline(seed=1)) != _hash(Pipeline(seed=2))
    assert _hash(Pipeline(temperature=0.1)) != _hash(Pipeline(temperature=0.2))


def test_hash_reads_the_current_parameter_value():
    module = Pipeline()
    graph = plait.trace(module, "x")
    before = graph.structural_hash()
    module.instructions.apply_update("Answer in French.")
    assert graph.structural_hash() != before
    assert graph.structural_hash() == _hash(Pipeline(instructions="Answer in French."), "x")


class _Rewired(Pipeline):
    def forward(self, text: str) -> Any:
        summary = self.summarize(text)
        analysis = self.analyze(
            f"Summary:\n{text}\n\nAnalysis:"
        )  # reads the input, not the summary
        return {"analysis": analysis, "words": self.counter(summary, unit=self.unit)}


def test_hash_changes_with_edges_and_output_structure():
    base = _hash(Pipeline())
    assert _hash(_Rewired()) != base

    class Listed(Pipeline):
        def forward(self, text: str) -> Any:
            out = Pipeline.forward(self, text)
            return [out["analysis"], out["words"]]

    assert _hash(Listed()) != base


def test_hash_changes_with_input_structure():
    assert (
        plait.trace(Reviews(), "t", "e").structural_hash()
        != plait.trace(Reviews(), "t", extra=["e"]).structural_hash()
    )


def test_hash_tells_apart_ops_with_the_same_name():
    assert word_count.name == other_word_count.name == "word_count"
    assert _hash(Pipeline(counter=word_count)) != _hash(Pipeline(counter=other_word_count))


def test_hash_of_a_helper_graph_ignores_input_values():
    first = plait.trace(Reviews(), "t", "e").structural_hash()
    assert first == plait.trace(Reviews(), "another text", "more").structural_hash()


def test_hash_of_a_large_graph_completes():
    graph = chain_graph(10_000)
    assert graph.structural_hash() == chain_graph(10_000).structural_hash()
    path, total = graph.critical_path({})
    assert (len(path), total) == (10_000, 0.0)
