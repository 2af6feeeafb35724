"""`EvalResult`: an evaluation's rows, its score, and the parameter values that produced it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plait.evaluation.snapshot import run_snapshot
from plait.execution.result import RunResult
from plait.values import notebook_html

if TYPE_CHECKING:
    from plait.evaluation.compare import Comparison


@dataclass(eq=False)
class EvalRow:
    """One example: what went in, what came out, its score, and what it cost.

    ``error`` says why there is no score: the run failed (then ``score`` is 0:
    the program produced nothing right) or the metric raised (then ``score``
    is None and the example is left out of the mean). ``result`` is the
    example's `RunResult` in the process that ran it; a row reloaded from a
    store has ``result=None`` and keeps the run as plain data in ``snapshot``.
    ``key`` identifies the input (a digest), to match rows across evaluations.
    """

    index: int
    key: str
    input: Any
    target: Any
    output: Any = None
    score: float | None = None
    message: str = ""
    error: str | None = None
    ok: bool = True
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latency: float | None = None
    result: RunResult | None = field(default=None, repr=False)
    stored_run: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def snapshot(self) -> dict[str, Any] | None:
        """The example's run as plain data (graph and node details), live or reloaded."""
        if self.result is not None:
            return run_snapshot(self.result)
        return self.stored_run

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "input": self.input,
            "target": self.target,
            "output": self.output,
            "score": self.score,
            "message": self.message,
            "error": self.error,
            "ok": self.ok,
            "tokens": self.tokens,
            "cost": self.cost,
            "latency": self.latency,
        }


def mean_score(rows: list[EvalRow]) -> float | None:
    scores = [r.score for r in rows if r.score is not None]
    return math.fsum(scores) / len(scores) if scores else None


@dataclass(eq=False)
class EvalResult:
    """What `plait.evaluate` returns (and `RunStore.load` reloads).

    ``params`` are the module's parameter values when the evaluation started
    (dotted name -> value), so a result says which prompt produced it.
    ``status`` is "done", "cancelled", "failed" (the batch itself raised), or
    "running" for a stored evaluation whose process stopped before it finished
    (its completed rows are kept).
    ``record_id`` is its id in ``store`` (the store's path) when one was used.
    """

    rows: list[EvalRow]
    name: str = ""
    kind: str = "evaluation"
    module: str = ""
    metric: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "done"
    started_at: float = 0.0
    finished_at: float | None = None
    examples: int = 0
    record_id: int | None = None
    store: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """The mean score over the examples that have one (failed runs count as 0)."""
        return mean_score(self.rows)

    @property
    def cost(self) -> float:
        return math.fsum(r.cost for r in self.rows)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.rows)

    @property
    def errors(self) -> list[EvalRow]:
        """Rows with an error: the run failed or the metric raised."""
        return [r for r in self.rows if r.error is not None]

    def failures(self, threshold: float = 1.0) -> list[EvalRow]:
        """Rows that did not pass: an error, no score, or a score below ``threshold``."""
        return [
            r for r in self.rows if r.error is not None or r.score is None or r.score < threshold
        ]

    def row(self, index: int) -> EvalRow:
        """The row of example ``index`` (its position in the examples given)."""
        for row in self.rows:
            if row.index == index:
                return row
        raise IndexError(f"this evaluation has no example {index} (it has {len(self.rows)} rows)")

    def to_dataframe(self) -> Any:
        """One row per example: input, target, output, score, message, error, tokens, cost, latency."""
        import pandas as pd  # optional extra: plait[jupyter]

        frame = pd.DataFrame([r.as_dict() for r in self.rows])
        return frame.set_index("index") if len(frame) else frame

    def compare(self, other: EvalResult) -> Comparison:
        """This evaluation (before) against ``other`` (after), example by example (matched by input)."""
        from plait.evaluation.compare import compare  # compare.py builds on this module

        return compare(self, other)

    def __repr__(self) -> str:
        score = "-" if self.score is None else f"{self.score:.3f}"
        name = f"{self.name!r}, " if self.name else ""
        stored = f", stored as #{self.record_id}" if self.record_id is not None else ""
        return (
            f"EvalResult({name}score={score}, examples={len(self.rows)}, "
            f"errors={len(self.errors)}, tokens={self.tokens:,}, cost=${self.cost:.4f}, "
            f"status={self.status!r}{stored})"
        )

    def _repr_html_(self) -> str | None:
        return notebook_html(self)
