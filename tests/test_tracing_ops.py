"""@plait.op, functional ops, structured access and arithmetic on placeholders."""

from __future__ import annotations

import asyncio
import operator

import pytest
from _tracing_support import Scripted, run_traced, traced

import plait
import plait.functional as F
from plait import LLMInference, Module, NodeKind, Op, ValueRef, unwrap


@plait.op
def word_count(text):
    return len(text.split())


@plait.op()
def shout(text):
    return text.upper() + "!"


@plait.op(name="tally")
async def count_letters(text):
    await asyncio.sleep(0)
    return sum(ch.isalpha() for ch in text)


NOTIFIED = []


@plait.op(side_effects=True)
def notify(text):
    NOTIFIED.append(text)


class Counts(Module):
    def __init__(self) -> None:
        super().__init__()
        self.llm = Scripted()

    def forward(self, text):
        reply = self.llm(text)
        return word_count(reply), shout(reply), count_letters(reply)


def test_op_decorator_forms_make_ops_that_run_directly_outside_a_trace():
    assert [type(f) for f in (word_count, shout, count_letters)] == [Op, Op, Op]
    assert [f.name for f in (word_count, shout, count_letters)] == ["word_count", "shout", "tally"]
    assert word_count("three little words") == 3
    assert shout("hi") == "HI!"
    assert count_letters.is_async and not word_count.is_async
    assert asyncio.run(count_letters("a1b2")) == 2


def test_each_op_call_is_one_node_under_the_calling_module():
    graph = traced(Counts(), "one two")

    assert [(n.id, n.kind, n.module_path) for n in graph.nodes.values()] == [
        ("text", NodeKind.INPUT, ""),
        ("llm", NodeKind.MODULE, "llm"),
        ("word_count", NodeKind.OP, ""),
        ("shout", NodeKind.OP, ""),
        ("tally", NodeKind.OP, ""),
    ]
    assert graph["tally"].module is count_letters
    assert graph["word_count"].args == (ValueRef("llm"),)
    assert graph["shout"].dependencies == ("llm",)


def test_sync_and_async_ops_run_like_eager():
    module = Counts()

    assert run_traced(module, "one two") == (2, "<ONE TWO>!", 6)
    eager = module("one two")
    assert eager[:2] == (2, "<ONE TWO>!")
    assert asyncio.run(eager[2]) == 6


def test_ops_in_nested_modules_are_named_under_the_module_path():
    class Outer(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Counts()

        def forward(self, text):
            first = self.inner(text)
            return word_count(first[1]), first

    graph = traced(Outer(), "x")

    assert [n for n in graph.nodes if n != "text"] == [
        "inner.llm",
        "inner.word_count",
        "inner.shout",
        "inner.tally",
        "word_count",
    ]
    assert graph["inner.word_count"].module_path == "inner"
    assert graph["inner.word_count"].name == "word_count"
    assert graph["word_count"].dependencies == ("inner.shout",)


def test_user_op_on_static_inputs_still_becomes_a_node():
    class Static(Module):
        def forward(self, x):
            return word_count("two words"), word_count(x)

    graph = traced(Static(), "x")

    assert graph["word_count"].args == ("two words",)
    assert graph["word_count"].dependencies == ()
    assert graph["word_count_1"].dependencies == ("x",)


def test_side_effect_op_stays_live_with_its_ancestors_while_unused_ops_are_dead():
    class Notifies(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x, y):
            notify(f"done: {self.llm(x)}")
            word_count(y)
            return "ok"

    graph = traced(Notifies(), "x", "y")

    assert {nid: n.live for nid, n in graph.nodes.items()} == {
        "x": True,
        "y": False,
        "llm": True,
        "notify": True,
        "word_count": False,
    }
    assert graph["notify"].side_effects is True


def test_op_called_in_a_helper_is_scoped():
    def count_twice(text):
        return word_count(text), word_count(shout(text))

    graph = traced(Counts(), "x")
    assert graph["word_count"].scope == ()

    class Helped(Module):
        def forward(self, x):
            return count_twice(x)

    graph = traced(Helped(), "x")
    assert [graph[n].scope for n in ("word_count", "shout", "word_count_1")] == [
        ("count_twice#1",)
    ] * 3


def test_op_defined_as_a_method_records_a_node():
    class WithOpMethod(Module):
        def __init__(self) -> None:
            super().__init__()
            self.prefix = "P"

        @plait.op
        def tag(self, text):
            return f"{self.prefix}:{text}"

        def forward(self, x):
            return self.tag(x)

    module = WithOpMethod()
    graph = traced(module, "x")

    assert graph["tag"].dependencies == ("x",)
    assert run_traced(module, "x") == module("x") == "P:x"


class Structured(Module):
    def __init__(self) -> None:
        super().__init__()
        self.extract = Scripted({"a": {"b": 1}, "items": [10, 20], "name": "n"})

    def forward(self, text):
        data = self.extract(text)
        return {
            "chain": data["a"]["b"],
            "index": data["items"][0],
            "get": data.get("missing", "fallback"),
            "present": data.get("name", "unused"),
        }


def test_structured_access_records_one_select_node_per_access():
    graph = traced(Structured(), "x")

    selects = [n for n in graph.nodes.values() if n.kind is NodeKind.OP]
    assert [(n.id, n.args, dict(n.kwargs), n.dependencies) for n in selects] == [
        ("select_a", (ValueRef("extract"), "a"), {}, ("extract",)),
        ("select_b", (ValueRef("select_a"), "b"), {}, ("select_a",)),
        ("select_items", (ValueRef("extract"), "items"), {}, ("extract",)),
        ("select_0", (ValueRef("select_items"), 0), {}, ("select_items",)),
        ("select_missing", (ValueRef("extract"), "missing"), {"default": "fallback"}, ("extract",)),
        ("select_name", (ValueRef("extract"), "name"), {"default": "unused"}, ("extract",)),
    ]
    assert all(n.module is F.select for n in selects)


def test_structured_access_runs_like_eager():
    module = Structured()

    assert (
        run_traced(module, "x")
        == module("x")
        == {
            "chain": 1,
            "index": 10,
            "get": "fallback",
            "present": "n",
        }
    )


def test_structured_access_in_a_nested_module_is_named_under_its_path():
    class Outer(Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Structured()

        def forward(self, x):
            return self.inner(x)

    graph = traced(Outer(), "x")

    assert graph["inner.select_a"].module_path == "inner"
    assert graph["inner.select_b"].dependencies == ("inner.select_a",)


def test_structured_llm_reply_is_indexed_with_select_nodes():
    class Judge(Module):
        def __init__(self) -> None:
            super().__init__()
            self.judge = LLMInference("fast", response_format={"type": "object"})

        def forward(self, x):
            return self.judge(x)["score"]

    graph = traced(Judge(), "x")

    assert graph.output == ValueRef("select_score")
    assert graph["select_score"].args == (ValueRef("judge"), "score")


class Arithmetic(Module):
    def __init__(self) -> None:
        super().__init__()
        self.llm = Scripted()

    def forward(self, text):
        n = word_count(self.llm(text))
        m = word_count(text)
        return [n + 1, 1 + n, n - 2, 10 - n, n * 3, 2 * n, n / 4, 8 / n, n + m]


def test_arithmetic_on_op_outputs_records_numeric_nodes():
    graph = traced(Arithmetic(), "a b c d")

    ops = [(n.id, n.args) for n in graph.nodes.values() if n.kind is NodeKind.OP][2:]
    n, m = ValueRef("word_count"), ValueRef("word_count_1")
    assert ops == [
        ("add", (n, 1)),
        ("add_1", (1, n)),
        ("sub", (n, 2)),
        ("sub_1", (10, n)),
        ("mul", (n, 3)),
        ("mul_1", (2, n)),
        ("div", (n, 4)),
        ("div_1", (8, n)),
        ("add_2", (n, m)),
    ]


def test_arithmetic_runs_like_eager():
    module = Arithmetic()

    assert run_traced(module, "a b c d") == unwrap(module("a b c d"))
    assert run_traced(module, "a b c d") == [5, 5, 2, 6, 12, 8, 1.0, 2.0, 8]


def test_functional_op_downstream_of_an_llm_is_its_own_node():
    class Parses(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            return F.parse_structured(self.llm(x))

    graph = traced(Parses(), "x")

    assert list(graph.nodes) == ["x", "llm", "parse_structured"]
    assert graph["parse_structured"].dependencies == ("llm",)


def test_functional_ops_on_static_values_fold_at_trace_time():
    class Folds(Module):
        def forward(self, x):
            return F.upper("static"), F.add(2, 3)

    graph = traced(Folds(), "x")

    assert list(graph.nodes) == ["x"]
    assert unwrap(graph.output) == ("STATIC", 5)


@pytest.mark.parametrize("text", ["", "one", "a few more words here"])
def test_a_mixed_pipeline_runs_like_eager(text):
    def summarize(llm, doc):
        return llm(f"Summarize: {doc}")

    class Mixed(Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = Scripted()
            self.second = Scripted()

        def forward(self, doc, extras):
            summary = summarize(self.first, doc)
            counted = word_count(summary) * 2
            notes = ", ".join(summarize(self.second, e) for e in extras)
            return {"summary": summary, "count": counted, "notes": notes, "fixed": [1, "two"]}

    module = Mixed()
    args = (text, ["x", "y"])

    assert run_traced(module, *args) == unwrap(module(*args))


def test_numbers_use_functional_ops_and_kinds_known_only_at_run_time_use_python_operators():
    class Kinds(Module):
        def __init__(self) -> None:
            super().__init__()
            self.extract = Scripted({"name": "ada", "n": 2})

        def forward(self, count):
            data = self.extract(count)
            return count + 1, data["name"] + "!", "Dr. " + data["name"], data["n"] * 3, count * 2.5

    module = Kinds()
    graph = traced(module, 3)

    assert graph["add"].module is F.add
    assert graph["mul_1"].module is F.mul
    assert [graph[n].module.fn for n in ("add_1", "add_2", "mul")] == [
        operator.add,
        operator.add,
        operator.mul,
    ]
    assert run_traced(module, 3) == unwrap(module(3)) == (4, "ada!", "Dr. ada", 6, 7.5)
