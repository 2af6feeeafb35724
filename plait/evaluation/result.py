"""`EvalResult`: an evaluation's rows, its score, the parameter values that produced it.

`Comparison` (``before.compare(after)``) matches two evaluations' rows by
input, with score deltas, word diffs of the outputs and the prompt diff.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from plait._upcalls import notebook_html
from plait.evaluation.diff import diff_segments
from plait.evaluation.snapshot import run_snapshot
from plait.execution.args import Args
from plait.execution.result import RunResult


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


def as_text(value: Any) -> str:
    """A value as the diffs show it: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Args):
        return repr(value)
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


@dataclass(eq=False)
class ComparisonRow:
    """One example in both evaluations (``before`` or ``after`` is None if only one has it)."""

    key: str
    input: Any
    target: Any
    before: EvalRow | None
    after: EvalRow | None

    @property
    def score_before(self) -> float | None:
        return None if self.before is None else self.before.score

    @property
    def score_after(self) -> float | None:
        return None if self.after is None else self.after.score

    @property
    def delta(self) -> float | None:
        """``score_after - score_before`` (None unless both have a score)."""
        if self.score_before is None or self.score_after is None:
            return None
        return self.score_after - self.score_before

    @property
    def output_before(self) -> Any:
        return None if self.before is None else self.before.output

    @property
    def output_after(self) -> Any:
        return None if self.after is None else self.after.output

    @property
    def changed(self) -> bool:
        """The outputs differ (or the example is in one evaluation only)."""
        if self.before is None or self.after is None:
            return True
        return as_text(self.before.output) != as_text(self.after.output) or (
            self.before.error != self.after.error
        )

    def diff(self) -> list[list[str]]:
        """A word diff of the outputs: ``[op, text]`` segments (equal, delete, insert)."""
        before = "" if self.before is None else as_text(self.before.output)
        after = "" if self.after is None else as_text(self.after.output)
        return diff_segments(before, after)


@dataclass(eq=False)
class Comparison:
    """``before.compare(after)``: matched rows, score deltas, and which parameters changed."""

    before: EvalResult
    after: EvalResult
    rows: list[ComparisonRow] = field(default_factory=list)

    @property
    def delta(self) -> float | None:
        """The change of the mean score."""
        if self.before.score is None or self.after.score is None:
            return None
        return self.after.score - self.before.score

    def changed(self) -> list[ComparisonRow]:
        """Rows whose output changed."""
        return [r for r in self.rows if r.changed]

    def improved(self) -> list[ComparisonRow]:
        return [r for r in self.rows if r.delta is not None and r.delta > 0]

    def regressed(self) -> list[ComparisonRow]:
        return [r for r in self.rows if r.delta is not None and r.delta < 0]

    def param_changes(self) -> dict[str, tuple[Any, Any]]:
        """Parameters whose value differs: name -> (before, after); missing on one side is None."""
        names = list(self.before.params) + [
            n for n in self.after.params if n not in self.before.params
        ]
        changes = {}
        for name in names:
            old, new = self.before.params.get(name), self.after.params.get(name)
            if as_text(old) != as_text(new):
                changes[name] = (old, new)
        return changes

    def param_diffs(self) -> dict[str, list[list[str]]]:
        """A word diff of each changed parameter (the prompt diff)."""
        return {
            name: diff_segments(
                "" if old is None else as_text(old), "" if new is None else as_text(new)
            )
            for name, (old, new) in self.param_changes().items()
        }

    def to_dataframe(self) -> Any:
        """One row per example: input, target, both outputs and scores, delta, changed."""
        import pandas as pd  # optional extra: plait[jupyter]

        return pd.DataFrame(
            [
                {
                    "input": r.input,
                    "target": r.target,
                    "output_before": r.output_before,
                    "output_after": r.output_after,
                    "score_before": r.score_before,
                    "score_after": r.score_after,
                    "delta": r.delta,
                    "changed": r.changed,
                }
                for r in self.rows
            ]
        )

    def __repr__(self) -> str:
        def fmt(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        delta = "-" if self.delta is None else f"{self.delta:+.3f}"
        return (
            f"Comparison(score {fmt(self.before.score)} -> {fmt(self.after.score)} ({delta}), "
            f"{len(self.rows)} examples: {len(self.improved())} improved, "
            f"{len(self.regressed())} regressed, {len(self.changed())} changed outputs)"
        )

    def _repr_html_(self) -> str | None:
        return notebook_html(self)


def compare(before: EvalResult, after: EvalResult) -> Comparison:
    """Match the rows of two evaluations by input (repeated inputs pair up in order)."""
    waiting: dict[str, list[EvalRow]] = {}
    for row in after.rows:
        waiting.setdefault(row.key, []).append(row)
    rows = []
    for row in sorted(before.rows, key=lambda r: r.index):
        match = waiting.get(row.key)
        other = match.pop(0) if match else None
        rows.append(ComparisonRow(row.key, row.input, row.target, row, other))
    for row in sorted(after.rows, key=lambda r: r.index):
        if row in (waiting.get(row.key) or ()):
            rows.append(ComparisonRow(row.key, row.input, row.target, None, row))
    return Comparison(before, after, rows)
