"""`Feedback`: what a loss says about an output, and how it flows back to parameters.

``await feedback.backward()`` walks the forward record of the judged output
in reverse topological order (see `plait.optimization.backward`) and appends
one `Feedback` per learnable parameter reached to ``Parameter.feedback``: the
same score and kind, its content rewritten to say where the parameter is
used, what that node received and returned, and what was said downstream.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from plait.errors import ConfigError
from plait.execution.records import ForwardRecord
from plait.optimization.backward import BackwardStrategy, RouteBackward, propagate

FEEDBACK_KINDS = (
    "text",
    "verifier",
    "judge",
    "rubric",
    "preference",
    "ranking",
    "composite",
    "human",
)


@dataclass(frozen=True, slots=True, eq=False)
class Feedback:
    """A judgement of one output: text, an optional score in [0, 1], and its kind.

    ``record`` is the judged output's `ForwardRecord` (set by losses when the
    output came from a training-mode run); ``details`` holds loss-specific
    data (a judge's raw reply, composite parts). On the copies parameters
    accumulate, ``parameter`` is the name of the parameter it reached.

    >>> Feedback("Too long; answer in one sentence.", score=0.3).score
    0.3
    """

    content: str
    score: float | None = None
    kind: str = "text"
    record: ForwardRecord | None = field(default=None, repr=False)
    details: Mapping[str, Any] = field(default_factory=dict, repr=False)
    parameter: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.content, str):
            problems.append(f"content must be a str, got {type(self.content).__name__}")
        score = self.score
        if score is not None:
            if isinstance(score, bool) or not isinstance(score, int | float):
                problems.append(f"score must be a number in [0, 1] or None, got {score!r}")
            elif not (math.isfinite(score) and 0 <= score <= 1):
                problems.append(f"score must be in [0, 1], got {score!r}")
            else:
                object.__setattr__(self, "score", float(score))
        if self.kind not in FEEDBACK_KINDS:
            problems.append(f"kind must be one of {', '.join(FEEDBACK_KINDS)}; got {self.kind!r}")
        if problems:
            raise ConfigError("invalid Feedback: " + "; ".join(problems))

    @property
    def sample(self) -> int | None:
        """The batch index of the judged output (None for a single run or no record)."""
        return None if self.record is None else self.record.sample

    def with_record(self, record: ForwardRecord | None) -> Feedback:
        return replace(self, record=record)

    async def backward(self, strategy: BackwardStrategy | None = None) -> None:
        """Propagate this feedback to every learnable parameter that shaped the output.

        ``strategy`` turns a node's output feedback into feedback for its
        inputs and parameters: `RouteBackward` (the default, no model calls)
        or `LLMBackward` (a model writes it, TextGrad-style).
        """
        for param, routed in await self._routes(strategy):
            param.accumulate_feedback(routed)

    async def _routes(self, strategy: BackwardStrategy | None) -> list[tuple[Any, Feedback]]:
        record = self.record
        if record is None:
            raise ConfigError(
                "this Feedback has no forward record to propagate through: the output it judges "
                "did not come from a training-mode run. Call module.train() before "
                "plait.run / run_batch, and pass the returned output (not a copy or a "
                "derived string) to the loss."
            )
        notes = await propagate(record, self.content, self.score, strategy or RouteBackward())
        routes = []
        for ref, texts in notes.items():
            param = record.graph.parameters[ref]
            if param.requires_grad:
                routed = replace(
                    self, content="\n\n".join(texts), parameter=ref.removeprefix("param:")
                )
                routes.append((param, routed))
        return routes

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields (for audit logs and widgets)."""
        return {
            "content": self.content,
            "score": self.score,
            "kind": self.kind,
            "parameter": self.parameter,
            "sample": self.sample,
        }


class FeedbackBatch(list):
    """One `Feedback` per sample of a batch; ``backward()`` propagates each sample's own."""

    @property
    def score(self) -> float | None:
        """The mean score of the samples that have one."""
        scores = [f.score for f in self if f.score is not None]
        return sum(scores) / len(scores) if scores else None

    async def backward(self, strategy: BackwardStrategy | None = None) -> None:
        """Propagate every sample's feedback (concurrently); parameters receive them in sample order.

        Samples whose run failed (no output, so no record) have nothing to propagate and are skipped.
        """
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(f._routes(strategy), name=f"backward sample {i}")
                for i, f in enumerate(self)
                if not (f.record is None and "error" in f.details)
            ]
        for task in tasks:
            for param, routed in task.result():
                param.accumulate_feedback(routed)
