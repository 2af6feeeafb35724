"""The suite's shared pipelines, each defined once and imported by the tests that use them.

Subprocess workers (``_crash_worker.py``) import them too: ``tests/`` is on
their path as the script's directory.
"""

from __future__ import annotations

from typing import Any

from plait import LLMInference, Module, Parameter, op


def learnable(text: str) -> Parameter:
    return Parameter(text, description=f"prompt that says {text!r}")


class SummarizeThenAnalyze(Module):
    """The anchor example: summarize on "fast", then analyze with learnable instructions."""

    def __init__(self, analyze_alias: str = "smart") -> None:
        super().__init__()
        self.instructions = Parameter("Be concise and concrete.", description="analysis style")
        self.summarize = LLMInference("fast", system_prompt="Summarize the input.")
        self.analyze = LLMInference(analyze_alias, system_prompt=self.instructions)

    def forward(self, text: str) -> Any:
        summary = self.summarize(text)
        return self.analyze(f"Summary:\n{summary}\n\nAnalysis:")


@op
def word_count(text: str, *, unit: Any = "words") -> int:
    return len(text.split())


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


class Chain(Module):
    """text -> first -> second: two LLM calls on "fast", each with a learnable system prompt."""

    def __init__(self) -> None:
        super().__init__()
        self.first = LLMInference("fast", system_prompt=learnable("First prompt."))
        self.second = LLMInference("fast", system_prompt=learnable("Second prompt."))

    def forward(self, text: str) -> Any:
        return self.second(self.first(text))


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
