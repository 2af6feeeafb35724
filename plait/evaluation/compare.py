"""Comparing two evaluations example by example: matched by input, with deltas and word diffs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from plait.evaluation.diff import diff_segments
from plait.evaluation.result import EvalResult, EvalRow
from plait.values import notebook_html


def as_text(value: Any) -> str:
    """A value as the diffs show it: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
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
