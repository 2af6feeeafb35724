"""Function encapsulation (SPEC B4): helpers are traced through and recorded as scopes."""

from __future__ import annotations

from _tracing_support import Scripted, run_traced, traced

from plait import LLMInference, Module, ModuleDict, NodeKind, ValueRef


def add_review(router, topic, llm):
    draft = llm(f"Write about {topic}")
    return router(f"Route: {draft}")


class RoutedReviews(Module):
    def __init__(self) -> None:
        super().__init__()
        self.router = LLMInference("fast")
        self.writer = LLMInference("smart")

    def forward(self, request):
        return [add_review(self.router, topic, self.writer) for topic in ("a", "b", "c")]


def test_helper_called_three_times_gives_three_scopes():
    graph = traced(RoutedReviews(), "x")

    assert {nid: n.scope for nid, n in graph.nodes.items() if n.kind is NodeKind.LLM} == {
        "writer": ("add_review#1",),
        "router": ("add_review#1",),
        "writer_1": ("add_review#2",),
        "router_1": ("add_review#2",),
        "writer_2": ("add_review#3",),
        "router_2": ("add_review#3",),
    }
    assert graph["router_1"].dependencies == ("writer_1",)
    assert graph["writer_2"].args == ("Write about c",)
    assert graph["request"].scope == ()


def inner(llm, text):
    return llm(f"[{text}]")


def outer(llm, text):
    return inner(llm, inner(llm, text))


def test_nested_helpers_record_the_whole_scope_chain():
    class Nested(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            return outer(self.llm, outer(self.llm, x))

    graph = traced(Nested(), "x")

    assert [n.scope for n in graph.nodes.values() if n.kind is NodeKind.LLM] == [
        ("outer#1", "inner#1"),
        ("outer#1", "inner#2"),
        ("outer#2", "inner#3"),
        ("outer#2", "inner#4"),
    ]


def test_helper_calling_a_composite_module_scopes_its_nodes():
    class Pair(Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = LLMInference("fast")
            self.second = LLMInference("fast")

        def forward(self, x):
            return self.second(self.first(x))

    def review_twice(pair, text):
        return pair(pair(text))

    class UsesPair(Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()

        def forward(self, x):
            return review_twice(self.pair, x)

    graph = traced(UsesPair(), "x")

    assert [(n.id, n.module_path, n.scope) for n in graph.nodes.values()][1:] == [
        ("pair.first", "pair.first", ("review_twice#1",)),
        ("pair.second", "pair.second", ("review_twice#1",)),
        ("pair.first_1", "pair.first", ("review_twice#1",)),
        ("pair.second_1", "pair.second", ("review_twice#1",)),
    ]


def test_helper_inside_a_nested_module_forward_is_scoped_there():
    def polish(llm, text):
        return llm(f"Polish: {text}")

    class Child(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            return polish(self.llm, x)

    class Parent(Module):
        def __init__(self) -> None:
            super().__init__()
            self.child = Child()

        def forward(self, x):
            return self.child(x)

    graph = traced(Parent(), "x")

    assert graph["child.llm"].scope == ("polish#1",)


def test_helper_methods_on_the_module_are_scopes():
    class WithMethod(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def _critique(self, text):
            return self.llm(f"Critique: {text}")

        def forward(self, x):
            return self._critique(self._critique(x))

    graph = traced(WithMethod(), "x")

    assert [graph[n].scope for n in ("llm", "llm_1")] == [("_critique#1",), ("_critique#2",)]


def make_step(llm, prefix):
    def step(text):
        return llm(f"{prefix}: {text}")

    return step


def test_closures_over_modules_and_constants():
    class Closures(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            steps = [make_step(self.llm, prefix) for prefix in ("one", "two")]
            for step in steps:
                x = step(x)
            return x

    graph = traced(Closures(), "x")

    assert [graph[n].scope for n in ("llm", "llm_1")] == [("step#1",), ("step#2",)]
    assert graph["llm_1"].args[0].payload[0] == "two: "
    assert graph["llm_1"].dependencies == ("llm",)


def test_lambdas_and_comprehensions_are_not_helpers():
    class Anonymous(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, docs):
            call = lambda text: self.llm(text)  # noqa: E731
            summaries = [call(doc) for doc in docs]
            return {key: self.llm(value) for key, value in zip("ab", summaries, strict=True)}

    graph = traced(Anonymous(), ["d1", "d2"])

    assert {n.scope for n in graph.nodes.values()} == {()}
    assert len(graph) == 2 + 4


def test_super_forward_and_direct_forward_calls_are_not_helpers():
    class Base(Module):
        def __init__(self) -> None:
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            return self.llm(x)

    class Derived(Base):
        def forward(self, x):
            return super().forward(x)

    class Direct(Module):
        def __init__(self) -> None:
            super().__init__()
            self.derived = Derived()

        def forward(self, x):
            return self.derived.forward(x)

    graph = traced(Direct(), "x")

    assert graph["derived.llm"].scope == ()


def test_module_dict_routing_inside_a_helper_runs_like_eager():
    def route(experts, topic, text):
        return experts[topic](f"{topic}: {text}")

    class Router(Module):
        def __init__(self) -> None:
            super().__init__()
            self.experts = ModuleDict({"math": Scripted(), "poetry": Scripted()})

        def forward(self, text):
            return [route(self.experts, topic, text) for topic in ("math", "poetry")]

    module = Router()
    graph = traced(module, "q")

    assert [(n.id, n.scope) for n in graph.nodes.values()][1:] == [
        ("experts.math", ("route#1",)),
        ("experts.poetry", ("route#2",)),
    ]
    assert graph.output == [ValueRef("experts.math"), ValueRef("experts.poetry")]
    assert run_traced(module, "q") == module("q") == ["<math: q>", "<poetry: q>"]
