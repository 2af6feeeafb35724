"""Losses: turn an output (and an optional target) into `Feedback`.

Every loss is called the same way::

    feedback = await loss(output, target)          # one Feedback
    feedback = await loss(outputs, targets)        # a FeedbackBatch, one per sample

A plain ``list`` or ``tuple`` is a batch (an output that is itself a list
came back from a run as a recorded list, which is one sample); items may be
outputs or `BatchItem`s, and a failed item gets score 0 without being
judged. Each Feedback carries the record of the output it judges, so
``await feedback.backward()`` can route it. This module holds the losses
that need no model; the LLM-backed ones are in `plait.optimization.judges`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from plait._checks import Checks
from plait.errors import ConfigError
from plait.execution.records import record_of
from plait.execution.result import BatchItem
from plait.optimization.feedback import Feedback, FeedbackBatch


def is_batch(output: Any) -> bool:
    """A plain list or tuple of outputs (recorded outputs of list type are single samples)."""
    return type(output) in (list, tuple)


def as_feedback(result: Any, kind: str, where: str = "the function") -> Feedback:
    """Read a verdict: a `Feedback`, ``(ok, message)``, a bool, or a score in [0, 1]."""
    if isinstance(result, Feedback):
        return result
    if isinstance(result, bool):
        return Feedback("passed" if result else "failed", float(result), kind)
    if isinstance(result, int | float):
        return Feedback(f"score {result:.2f}", result, kind)
    if isinstance(result, Mapping) and "content" in result:
        return Feedback(str(result["content"]), result.get("score"), kind)
    if isinstance(result, tuple) and len(result) == 2:
        ok, message = result
        score = float(ok) if isinstance(ok, bool) else ok
        return Feedback(str(message), score, kind)
    raise ConfigError(
        f"{where} returned {result!r:.80}; expected (ok, message), a bool, a score in [0, 1], "
        "a {'content': ..., 'score': ...} dict, or a Feedback"
    )


class Loss:
    """Base class: subclasses define `evaluate` (one sample) or `evaluate_batch` (all at once)."""

    kind: ClassVar[str] = "text"

    async def __call__(self, output: Any, target: Any = None) -> Feedback | FeedbackBatch:
        if not is_batch(output):
            return (await self._judge([output], [target]))[0]
        samples = list(output)
        if target is None:
            targets = [None] * len(samples)
        elif is_batch(target) and len(target) == len(samples):
            targets = list(target)
        else:
            raise ConfigError(
                f"{type(self).__name__} got a batch of {len(samples)} outputs but targets "
                f"{target!r:.60}; pass a list of {len(samples)} targets (one per output) or none"
            )
        return FeedbackBatch(await self._judge(samples, targets))

    async def _judge(self, outputs: list[Any], targets: list[Any]) -> list[Feedback]:
        results: dict[int, Feedback] = {}
        pending: list[tuple[int, Any]] = []
        for i, output in enumerate(outputs):
            if isinstance(output, BatchItem):
                if not output.ok:
                    error = str(output.error).splitlines()[0] if output.error else "unknown error"
                    results[i] = Feedback(
                        f"the run failed, so there is no output to judge: {error}",
                        0.0,
                        self.kind,
                        details={"error": error},
                    )
                    continue
                output = output.output
            pending.append((i, output))
        judged = await self.evaluate_batch(
            [o for _, o in pending], [targets[i] for i, _ in pending]
        )
        for (i, output), feedback in zip(pending, judged, strict=True):
            results[i] = feedback.with_record(record_of(output))
        return [results[i] for i in range(len(outputs))]

    async def evaluate_batch(self, outputs: list[Any], targets: list[Any]) -> list[Feedback]:
        """One Feedback per output (records are attached by the caller)."""
        return [await self.evaluate(o, t) for o, t in zip(outputs, targets, strict=True)]

    async def evaluate(self, output: Any, target: Any) -> Feedback:
        raise NotImplementedError(
            f"{type(self).__name__} must define evaluate() or evaluate_batch()"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VerifierLoss(Loss):
    """A Python check: ``fn(output, target)`` returns ``(ok, message)``, a bool or a score in [0, 1].

    ``fn`` may be async. ``ok`` in the tuple may itself be a score.

    >>> exact = VerifierLoss(lambda out, want: (out == want, f"expected {want!r}, got {out!r}"))
    """

    kind = "verifier"

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        if not callable(fn):
            raise ConfigError(f"VerifierLoss needs a callable fn(output, target); got {fn!r:.60}")
        self.fn = fn

    async def evaluate(self, output: Any, target: Any) -> Feedback:
        verdict = self.fn(output, target)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return as_feedback(
            verdict, self.kind, f"verifier {getattr(self.fn, '__name__', self.fn)!r}"
        )

    def __repr__(self) -> str:
        return f"VerifierLoss({getattr(self.fn, '__name__', self.fn)})"


class HumanFeedback(Loss):
    """Feedback a person gave, supplied as data (plait never prompts on stdin).

    The target is the person's verdict: text, ``(text, score)``, a bool or
    score, a ``{"content", "score"}`` dict, or a `Feedback`. Without a target,
    ``responses(output)`` is asked (for example a notebook widget's answers).

        feedback = await HumanFeedback()(output, ("Too formal.", 0.4))
    """

    kind = "human"

    def __init__(self, responses: Callable[[Any], Any] | None = None) -> None:
        checks = Checks("HumanFeedback")
        checks.function("responses", responses)
        checks.raise_any()
        self.responses = responses

    async def evaluate(self, output: Any, target: Any) -> Feedback:
        verdict = target
        if verdict is None and self.responses is not None:
            verdict = self.responses(output)
        if verdict is None:
            raise ConfigError(
                "HumanFeedback has no verdict for this output: pass the person's feedback as the "
                "target (loss(output, 'too long') or loss(outputs, [...])), or give "
                "HumanFeedback(responses=...) a function that looks it up"
            )
        if isinstance(verdict, str):
            return Feedback(verdict, None, self.kind)
        if isinstance(verdict, tuple) and len(verdict) == 2 and isinstance(verdict[0], str):
            return Feedback(verdict[0], verdict[1], self.kind)
        found = as_feedback(verdict, self.kind, "HumanFeedback")
        return Feedback(found.content, found.score, self.kind, details=found.details)


class CompositeLoss(Loss):
    """Weighted combination: the score is the weighted mean of the parts' scores.

    Parts without a score are left out of the mean; the content lists every
    part's feedback. Parts run concurrently.

        CompositeLoss([(VerifierLoss(check), 2.0), (LLMJudge("judge", "clear"), 1.0)])
    """

    kind = "composite"

    def __init__(self, parts: Sequence[tuple[Loss, float] | Loss]) -> None:
        normalized: list[tuple[Loss, float]] = []
        problems = []
        for i, part in enumerate(parts):
            loss, weight = (part, 1.0) if isinstance(part, Loss) else part
            if not isinstance(loss, Loss):
                problems.append(f"parts[{i}]: {loss!r:.40} is not a Loss")
            elif isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                problems.append(f"parts[{i}]: weight must be a positive number, got {weight!r}")
            else:
                normalized.append((loss, float(weight)))
        if not parts:
            problems.append("no parts given")
        if problems:
            raise ConfigError(
                "CompositeLoss needs a list of (loss, weight) pairs: " + "; ".join(problems)
            )
        self.parts = normalized

    async def evaluate_batch(self, outputs: list[Any], targets: list[Any]) -> list[Feedback]:
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(loss.evaluate_batch(outputs, targets)) for loss, _ in self.parts
            ]
        results = [task.result() for task in tasks]
        combined = []
        for i in range(len(outputs)):
            pieces = [
                (loss, weight, found[i])
                for (loss, weight), found in zip(self.parts, results, strict=True)
            ]
            scored = [(w, f.score) for _, w, f in pieces if f.score is not None]
            total = sum(w for w, _ in scored)
            # Clamped: float rounding may push a mean of scores in [0, 1] a hair past 1.
            score = min(1.0, sum(w * s for w, s in scored) / total) if scored else None
            content = "\n".join(
                f"[{type(loss).__name__} x{w:g}] {f.content}" for loss, w, f in pieces
            )
            parts = [dict(f.to_dict(), loss=type(loss).__name__, weight=w) for loss, w, f in pieces]
            combined.append(Feedback(content, score, self.kind, details={"parts": parts}))
        return combined

    def __repr__(self) -> str:
        return f"CompositeLoss({[(loss, weight) for loss, weight in self.parts]!r})"
