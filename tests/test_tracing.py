"""Tracing: graph structure, inputs, outputs, node ids, liveness."""

from __future__ import annotations

import inspect
from pathlib import Path

import _models
import pytest
from _models import SummarizeThenAnalyze
from _tracing_support import Compose, line_of, traced

from plait import (
    ConfigError,
    LLMInference,
    Module,
    ModuleList,
    NodeKind,
    Parameter,
    Sequential,
    TraceError,
    Value,
    ValueKind,
    ValueRef,
    trace,
)
from plait.values import FormatField


class Leaf(Module):
    def __init__(self) -> None:
        super().__init__()
        self.leaf = LLMInference("fast")

    def forward(self, x):
        return self.leaf(x)


class Mid(Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = Leaf()
        self.second = Leaf()

    def forward(self, x):
        return self.second(self.first(x))


class Outer(Module):
    def __init__(self) -> None:
        super().__init__()
        self.mid = Mid()
        self.final = LLMInference("smart")

    def forward(self, x):
        return self.final(self.mid(x))


class WrapsOuter(Module):
    def __init__(self) -> None:
        super().__init__()
        self.outer = Outer()

    def forward(self, x):
        return self.outer(x)


def test_anchor_example_records_two_llm_nodes_and_the_fstring_dependency():
    graph = traced(SummarizeThenAnalyze(), "input text")

    assert list(graph.nodes) == ["text", "summarize", "analyze"]
    assert graph.topological_order() == ["text", "summarize", "analyze"]
    summarize, analyze = graph["summarize"], graph["analyze"]
    assert summarize.kind is NodeKind.LLM and summarize.alias == "fast"
    assert summarize.args == (ValueRef("text"),)
    assert analyze.kind is NodeKind.LLM and analyze.alias == "smart"
    assert analyze.dependencies == ("summarize",)
    assert analyze.args == (
        Value(
            ValueKind.FSTRING,
            ("Summary:\n", FormatField("summarize"), "\n\nAnalysis:"),
        ),
    )
    assert analyze.parameters == ("param:instructions",)
    assert summarize.parameters == ()
    assert list(graph.parameters) == ["param:instructions"]
    assert graph.parameters["param:instructions"].value == "Be concise and concrete."
    assert graph.input_ids == ("text",)
    assert graph.output == ValueRef("analyze")
    assert graph.output_ids == ("analyze",)


def test_nested_modules_are_flattened_with_their_module_paths():
    graph = traced(WrapsOuter(), "q")

    assert list(graph.nodes) == [
        "x",
        "outer.mid.first.leaf",
        "outer.mid.second.leaf",
        "outer.final",
    ]
    assert [n.module_path for n in graph.nodes.values()] == [
        "",
        "outer.mid.first.leaf",
        "outer.mid.second.leaf",
        "outer.final",
    ]
    assert [n.name for n in graph.nodes.values()] == ["x", "leaf", "leaf", "final"]
    assert graph["outer.mid.second.leaf"].dependencies == ("outer.mid.first.leaf",)
    assert graph["outer.final"].dependencies == ("outer.mid.second.leaf",)
    assert graph.output_ids == ("outer.final",)


def test_three_level_nesting_gives_one_node_per_llm_call_plus_inputs():
    class Inner(Module):
        def __init__(self) -> None:
            super().__init__()
            self.leaf = LLMInference("fast")

        def forward(self, x):
            return self.leaf(self.leaf(x))

    class MidLevel(Module):
        def __init__(self) -> None:
            super().__init__()
            self.leaf = Inner()

        def forward(self, x, y):
            return self.leaf(x), self.leaf(y)

    class Top(Module):
        def __init__(self) -> None:
            super().__init__()
            self.mid = MidLevel()

        def forward(self, a, b):
            return self.mid(a, b)

    class Root(Module):
        def __init__(self) -> None:
            super().__init__()
            self.outer = Top()

        def forward(self, a, b):
            return self.outer(a, b)

    graph = traced(Root(), "1", "2")

    assert len(graph) == 4 + 2
    assert [n.id for n in graph.nodes.values() if n.kind is NodeKind.LLM] == [
        "outer.mid.leaf.leaf",
        "outer.mid.leaf.leaf_1",
        "outer.mid.leaf.leaf_2",
        "outer.mid.leaf.leaf_3",
    ]
    assert {n.module_path for n in graph.nodes.values() if n.kind is NodeKind.LLM} == {
        "outer.mid.leaf.leaf"
    }
    assert graph.output == (ValueRef("outer.mid.leaf.leaf_1"), ValueRef("outer.mid.leaf.leaf_3"))


def test_diamond_joins_both_branches():
    class Diamond(Module):
        def __init__(self) -> None:
            super().__init__()
            self.split = LLMInference("fast")
            self.left = LLMInference("fast")
            self.right = LLMInference("fast")
            self.join = LLMInference("smart")

        def forward(self, x):
            top = self.split(x)
            return self.join(f"{self.left(top)} vs {self.right(top)}")

    graph = traced(Diamond(), "x")

    assert graph["left"].dependencies == ("split",)
    assert graph["right"].dependencies == ("split",)
    assert graph["join"].dependencies == ("left", "right")
    assert graph.ancestors("join") == {"x", "split", "left", "right"}
    assert graph.descendants("split") == {"left", "right", "join"}


def test_fan_out_and_fan_in_over_a_module_list():
    class FanOut(Module):
        def __init__(self) -> None:
            super().__init__()
            self.experts = ModuleList([LLMInference("fast") for _ in range(3)])
            self.judge = LLMInference("smart")

        def forward(self, question):
            answers = [expert(question) for expert in self.experts]
            return self.judge("\n".join(answers))

    graph = traced(FanOut(), "q")

    assert [graph[f"experts.{i}"].dependencies for i in range(3)] == [("question",)] * 3
    assert graph["judge"].dependencies == ("experts.0", "experts.1", "experts.2")
    assert graph["judge"].args[0].payload == (
        FormatField("experts.0"),
        "\n",
        FormatField("experts.1"),
        "\n",
        FormatField("experts.2"),
    )


def test_sequential_chains_its_members():
    graph = traced(Sequential(LLMInference("a"), LLMInference("b")), "x")

    assert list(graph.nodes) == ["x", "0", "1"]
    assert graph["1"].dependencies == ("0",)


def test_second_call_of_the_same_module_gets_a_numbered_id():
    class Twice(Module):
        def __init__(self) -> None:
            super().__init__()
            self.summarize = LLMInference("fast")

        def forward(self, x):
            return self.summarize(self.summarize(x)), self.summarize(x)

    graph = traced(Twice(), "x")

    assert list(graph.nodes) == ["x", "summarize", "summarize_1", "summarize_2"]
    assert graph["summarize_1"].module_path == "summarize"


def test_node_ids_never_clash_with_input_names():
    class Clash(Module):
        def __init__(self) -> None:
            super().__init__()
            self.summarize = LLMInference("fast")

        def forward(self, summarize):
            return self.summarize(self.summarize(summarize))

    graph = traced(Clash(), "x")

    assert list(graph.nodes) == ["summarize", "summarize_1", "summarize_2"]
    assert graph["summarize_1"].dependencies == ("summarize",)


def test_source_points_at_the_users_line():
    graph = traced(SummarizeThenAnalyze(), "x")

    lines, first = inspect.getsourcelines(SummarizeThenAnalyze.forward)

    def line(text: str) -> str:
        (found,) = [first + i for i, source in enumerate(lines) if text in source]
        return f"{Path(_models.__file__).name}:{found}"

    assert graph["summarize"].source == line("summary = self.summarize(text)")
    assert graph["analyze"].source == line("return self.analyze(f")
    assert graph["text"].source is None


def test_list_and_dict_inputs_become_one_input_node_per_leaf():
    class Docs(Module):
        def __init__(self) -> None:
            super().__init__()
            self.summarize = LLMInference("fast")

        def forward(self, docs, meta):
            summaries = [self.summarize(f"{meta['topic']}: {doc}") for doc in docs]
            return summaries

    graph = traced(Docs(), ["a", "b", "c"], {"topic": "t", "extra": {"k": [1]}})

    assert graph.input_ids == ("docs.0", "docs.1", "docs.2", "meta.topic", "meta.extra.k.0")
    assert graph.input_paths["meta.extra.k.0"] == ("meta", ("extra", "k", 0))
    assert graph.input_paths["docs.1"] == ("docs", (1,))
    assert graph["meta.extra.k.0"].live is False
    assert [graph[n].dependencies for n in ("summarize", "summarize_1", "summarize_2")] == [
        ("meta.topic", "docs.0"),
        ("meta.topic", "docs.1"),
        ("meta.topic", "docs.2"),
    ]
    assert graph.output == [ValueRef("summarize"), ValueRef("summarize_1"), ValueRef("summarize_2")]


def test_keyword_arguments_are_inputs_and_unpassed_defaults_stay_constants():
    class Styled(Module):
        def __init__(self) -> None:
            super().__init__()
            self.write = LLMInference("fast")

        def forward(self, topic, *, style="short", n=2):
            return [self.write(f"{style} #{i}: {topic}") for i in range(n)]

    graph = traced(Styled(), topic="cats", style="long")

    assert graph.input_ids == ("topic", "style")
    assert [graph[n].args[0].payload for n in ("write", "write_1")] == [
        (FormatField("style"), " #0: ", FormatField("topic")),
        (FormatField("style"), " #1: ", FormatField("topic")),
    ]
    assert traced(Styled(), "dogs").input_ids == ("topic",)
    assert traced(Styled(), "dogs")["write"].args[0].payload == ("short #0: ", FormatField("topic"))


def test_none_arguments_are_constants_not_inputs():
    graph = traced(Compose(lambda x, y: (x, y)), "a", None)

    assert graph.input_ids == ("args.0",)
    assert graph.output == (ValueRef("args.0"), None)


def test_forward_returning_literals_has_no_model_nodes():
    graph = traced(Compose(lambda x: {"answer": 42, "tags": ["a", "b"]}), "x")

    assert graph.output == {"answer": 42, "tags": ["a", "b"]}
    assert graph.output_ids == ()
    assert graph["args.0"].live is False


def test_forward_returning_its_input_needs_only_the_input_node():
    graph = traced(Compose(lambda x: x), "x")

    assert list(graph.nodes) == ["args.0"]
    assert graph.output == ValueRef("args.0")
    assert graph.output_ids == ("args.0",)
    assert graph["args.0"].live is True


def test_mixed_literal_and_traced_returns_keep_their_structure():
    class Mixed(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            out = self.llm(x)
            return {
                "version": 2,
                "pair": (out, "literal"),
                "list": [1, f"<{out}>", {"deep": out}],
            }

    graph = traced(Mixed(), "x")

    assert graph.output == {
        "version": 2,
        "pair": (ValueRef("llm"), "literal"),
        "list": [
            1,
            Value(ValueKind.FSTRING, ("<", FormatField("llm"), ">")),
            {"deep": ValueRef("llm")},
        ],
    }
    assert graph.output_ids == ("llm",)


def test_unused_node_is_dead_while_ancestors_of_outputs_stay_live():
    class Wasteful(Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = LLMInference("fast")
            self.unused = LLMInference("fast")
            self.final = LLMInference("fast")

        def forward(self, x, y):
            a = self.first(x)
            self.unused(a)
            self.unused(y)
            return self.final(a)

    graph = traced(Wasteful(), "x", "y")

    assert {nid: n.live for nid, n in graph.nodes.items()} == {
        "x": True,
        "y": False,
        "first": True,
        "unused": False,
        "unused_1": False,
        "final": True,
    }
    assert graph.live_ids() == ["x", "first", "final"]


def test_tracing_twice_gives_equal_graphs():
    module = SummarizeThenAnalyze()

    first, second = traced(module, "a"), traced(module, "b")

    assert first.nodes == second.nodes
    assert first.output == second.output
    assert first.parameters == second.parameters


def test_bare_llm_inference_can_be_the_root():
    llm = LLMInference("fast", system_prompt=Parameter("Be brief.", description="style"))

    graph = traced(llm, "hi")

    assert list(graph.nodes) == ["prompt", "llm_inference"]
    node = graph["llm_inference"]
    assert node.kind is NodeKind.LLM and node.module is llm
    assert node.dependencies == ("prompt",)
    assert node.parameters == ("param:system_prompt",)
    assert graph.output == ValueRef("llm_inference")


def test_unregistered_modules_get_distinct_paths_under_the_caller():
    shared = LLMInference("fast")
    other = LLMInference("fast")

    def helper(llm, x):
        return llm(x)

    class Uses(Module):
        def forward(self, x):
            return helper(other, helper(shared, x))

    graph = traced(Uses(), "x")

    assert list(graph.nodes) == ["x", "llm_inference", "llm_inference_1"]
    assert graph["llm_inference"].module is shared
    assert graph["llm_inference_1"].module is other
    assert graph["llm_inference"].module_path == "llm_inference"
    assert graph["llm_inference_1"].module_path == "llm_inference_1"


def test_leaf_module_that_is_not_an_llm_becomes_a_module_node():
    class Lookup(Module):
        _is_leaf = True

        def forward(self, key):
            return {"key": key}

    class Uses(Module):
        def __init__(self) -> None:
            super().__init__()
            self.lookup = Lookup()

        def forward(self, x):
            return self.lookup(x)

    graph = traced(Uses(), "x")

    assert graph["lookup"].kind is NodeKind.MODULE
    assert graph["lookup"].dependencies == ("x",)


def test_wrong_arguments_to_forward_name_the_module():
    with pytest.raises(TraceError) as info:
        trace(SummarizeThenAnalyze(), "a", "b")

    line = line_of(__file__, 'trace(SummarizeThenAnalyze(), "a", "b")')
    assert str(info.value).startswith(
        "the root module (SummarizeThenAnalyze.forward(text)) cannot be called as ('a', 'b'): "
        f"too many positional arguments; called by trace() at test_tracing.py:{line}"
    )


def test_wrong_arguments_to_a_nested_composite_name_its_path():
    class Wrong(Module):
        def __init__(self) -> None:
            super().__init__()
            self.outer = Outer()

        def forward(self, x):
            return self.outer(x, x)

    with pytest.raises(TraceError, match=r"'outer' \(Outer.forward\(x\)\)"):
        trace(Wrong(), "x")


def test_wrong_arguments_to_an_llm_call_name_the_module_and_line():
    class Wrong(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            return self.llm(x, temperature=0.2)

    with pytest.raises(TraceError) as info:
        trace(Wrong(), "x")

    message = str(info.value)
    assert message.startswith(
        "'llm' (LLMInference.forward(prompt)) cannot be called as "
        "(<placeholder>, temperature=...): got an unexpected keyword argument 'temperature'"
    )
    assert "in the root module (Wrong.forward)" in message
    assert f"test_tracing.py:{line_of(__file__, 'self.llm(x, temperature=0.2)')}" in message


def test_an_async_module_traces_as_one_module_node_that_expands_at_run_time():
    class Async(Module):
        async def forward(self, x):
            return x

    class Outer(Module):
        def __init__(self):
            super().__init__()
            self.inner = Async()

        def forward(self, x):
            return self.inner(x)

    graph = trace(Outer(), "x")
    assert [(n.id, n.kind) for n in graph.nodes.values()] == [
        ("x", NodeKind.INPUT),
        ("inner", NodeKind.MODULE),
    ]
    assert graph.nodes["inner"].dependencies == ("x",)


def test_trace_refuses_a_root_that_is_not_a_module():
    with pytest.raises(ConfigError, match="trace\\(\\) needs a Module; got function"):
        trace(lambda x: x, "x")


def test_a_forward_argument_named_module_can_be_passed_by_keyword():
    graph = traced(Compose(lambda module: module), module="m")

    assert graph.input_ids == ("kwargs.module",)


def test_placeholder_leaked_into_another_trace_is_refused():
    class Leaky(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")
            self.kept = None

        def forward(self, x):
            if self.kept is None:
                object.__setattr__(self, "kept", self.llm(x))
                return self.kept
            return self.llm(self.kept)

    module = Leaky()
    traced(module, "x")

    with pytest.raises(TraceError, match=r"placeholder from another trace \('llm'\)"):
        trace(module, "x")


def test_string_built_from_another_traces_placeholder_is_refused():
    class Leaky(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")
            self.kept = None

        def forward(self, x):
            if self.kept is None:
                object.__setattr__(self, "kept", f"old: {self.llm(x)}")
                return self.kept
            return self.llm(self.kept)

    module = Leaky()
    traced(module, "x")

    with pytest.raises(TraceError, match=r"placeholder from another trace \('llm'\)"):
        trace(module, "x")


def test_structured_response_format_gives_a_structured_placeholder():
    seen = {}

    class Uses(Module):
        def __init__(self) -> None:
            super().__init__()
            self.plain = LLMInference("fast")
            self.json = LLMInference("fast", response_format={"type": "object"})

        def forward(self, x):
            seen["kinds"] = (self.plain(x).kind, self.json(x).kind, x.kind)
            return x

    traced(Uses(), "x")

    assert seen["kinds"] == (ValueKind.TEXT, ValueKind.STRUCTURED, ValueKind.TEXT)


def test_parameters_of_unregistered_modules_get_distinct_refs():
    first = LLMInference("fast", system_prompt=Parameter("one", description="first"))
    second = LLMInference("fast", system_prompt=Parameter("two", description="second"))

    class Uses(Module):
        def __init__(self) -> None:
            super().__init__()
            self.system_prompt = Parameter("own", description="registered")

        def forward(self, x):
            return second(first(f"{self.system_prompt}: {x}"))

    graph = traced(Uses(), "x")

    assert {ref: p.value for ref, p in graph.parameters.items()} == {
        "param:system_prompt": "own",
        "param:system_prompt_2": "one",
        "param:system_prompt_3": "two",
    }
    assert graph["llm_inference"].parameters == ("param:system_prompt", "param:system_prompt_2")
