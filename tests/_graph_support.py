"""Modules, ops and hand-built graphs shared by the graph tests (also imported by subprocesses)."""

from __future__ import annotations

from typing import Any

from plait import GraphNode, InferenceGraph, LLMInference, Module, NodeKind, Parameter, ValueRef, op


@op
def word_count(text: str, *, unit: Any = "words") -> int:
    return len(text.split())


@op(name="word_count")
def other_word_count(text: str, *, unit: Any = "words") -> int:
    return len(text)


class Pipeline(Module):
    """The anchor example plus an op, each setting overridable to test hash sensitivity."""

    def __init__(
        self,
        *,
        summary_prompt: str = "Summarize the input.",
        instructions: str = "Be concise and concrete.",
        analyze_alias: str = "smart",
        counter: Any = word_count,
        unit: Any = "words",
        **analyze_options: Any,
    ) -> None:
        super().__init__()
        self.instructions = Parameter(instructions, description="Style of the analysis.")
        self.summarize = LLMInference("fast", system_prompt=summary_prompt)
        self.analyze = LLMInference(
            analyze_alias, system_prompt=self.instructions, **analyze_options
        )
        self.counter = counter
        self.unit = unit

    def forward(self, text: str) -> Any:
        summary = self.summarize(text)
        analysis = self.analyze(f"Summary:\n{summary}\n\nAnalysis:")
        return {"analysis": analysis, "words": self.counter(summary, unit=self.unit)}


def add_review(router: Any, topic: str, llm: Any) -> Any:
    return llm(f"Review {topic}: {router(topic)}")


class Judge(Module):
    def __init__(self) -> None:
        super().__init__()
        self.judge = LLMInference("smart", system_prompt="Judge the review.")

    def forward(self, text: str) -> Any:
        return self.judge(text)


class Reviews(Module):
    """A helper called for three topics, a nested module, and an unused (dead) call."""

    def __init__(self) -> None:
        super().__init__()
        self.router = LLMInference("fast", system_prompt="Route the topic.")
        self.pipeline = Module()
        self.pipeline.analyzer = Judge()

    def forward(self, text: str, extra: str) -> Any:
        self.router(extra)
        reviews = [
            add_review(self.router, topic, self.pipeline.analyzer) for topic in ("a", "b", "c")
        ]
        return [*reviews, text]


def node(node_id: str, *deps: str, kind: NodeKind = NodeKind.OP, live: bool = True) -> GraphNode:
    """A hand-built op node reading its dependencies as positional refs."""
    args = tuple(ValueRef(dep) for dep in deps)
    return GraphNode(node_id, kind, node_id, args=args, dependencies=deps, live=live)


def graph_of(*nodes: GraphNode, outputs: tuple[str, ...] = ()) -> InferenceGraph:
    """A graph of hand-built nodes; inputs are the INPUT-kind nodes, outputs the given ids."""
    inputs = [n.id for n in nodes if n.kind is NodeKind.INPUT]
    return InferenceGraph({n.id: n for n in nodes}, inputs, [ValueRef(o) for o in outputs])


def chain_graph(size: int) -> InferenceGraph:
    """An input, then ``size - 1`` op nodes, node i reading nodes i-1 and i//2."""
    nodes = [node("n0", kind=NodeKind.INPUT)]
    for i in range(1, size):
        deps = dict.fromkeys((f"n{i - 1}", f"n{i // 2}"))
        nodes.append(node(f"n{i}", *deps))
    return graph_of(*nodes, outputs=(f"n{size - 1}",))
