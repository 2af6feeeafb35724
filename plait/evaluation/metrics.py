"""Metrics: what `evaluate` accepts as one, and how a verdict becomes a score and a message.

A metric is ``metric(output, target)`` (sync or async) returning a number,
a bool, ``(score, message)``, a ``{"score", "content"}`` dict or anything
with ``score`` and ``content`` attributes (a `plait.Feedback`). A plait loss
(anything with ``evaluate_batch``, like `VerifierLoss` or `LLMJudge`) is
called once on the whole batch, as `train` calls it, so judges that compare
samples see all of them; if that call raises, each example is judged alone
so one bad example cannot take the others' scores with it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from plait.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Verdict:
    """One example's score and message, or the error its metric raised."""

    score: float | None
    message: str = ""
    error: str | None = None


def describe(metric: Any) -> str:
    """A short name for ``metric`` (kept with the result and in the store)."""
    if inspect.isfunction(metric) or inspect.ismethod(metric):
        return metric.__qualname__
    text = repr(metric)
    return text if len(text) <= 120 else text[:119] + "…"


def is_loss(metric: Any) -> bool:
    """A plait `Loss`: judged on the whole batch at once."""
    return callable(metric) and callable(getattr(metric, "evaluate_batch", None))


def check_metric(metric: Any) -> None:
    if not callable(metric):
        raise ConfigError(
            f"metric must be a function metric(output, target) or a plait loss; got {metric!r:.80}"
        )


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise ConfigError(f"{where} gave the score {value!r:.60}; a score must be a finite number")


def verdict_of(result: Any, where: str = "the metric") -> Verdict:
    """Read what a metric returned (see the module docstring for the accepted forms)."""
    if isinstance(result, bool):
        return Verdict(float(result), "passed" if result else "failed")
    if isinstance(result, int | float):
        return Verdict(_number(result, where))
    if isinstance(result, tuple) and len(result) == 2:
        return Verdict(_number(result[0], where), str(result[1]))
    if isinstance(result, Mapping) and "score" in result:
        return Verdict(_number(result["score"], where), str(result.get("content", "")))
    if hasattr(result, "score") and hasattr(result, "content"):
        return Verdict(_number(result.score, where), str(result.content))
    raise ConfigError(
        f"{where} returned {result!r:.80}; expected a number, a bool, (score, message), "
        "a {'score': ..., 'content': ...} dict or a Feedback"
    )


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def judge_one(metric: Callable[..., Any], output: Any, target: Any) -> Verdict:
    """Apply ``metric`` to one output; an exception becomes the verdict's error."""
    try:
        result = metric(output, target)
        if inspect.isawaitable(result):
            result = await result
        return verdict_of(result, f"metric {describe(metric)}")
    except Exception as exc:  # recorded for this example; the evaluation goes on
        return Verdict(None, "", error_text(exc))


async def judge_batch(metric: Any, outputs: list[Any], targets: list[Any]) -> list[Verdict] | None:
    """A plait loss over every output at once; None if that call raised (judge one by one)."""
    try:
        feedback = await metric(list(outputs), list(targets))
        found = [verdict_of(f, f"loss {describe(metric)}") for f in feedback]
    except Exception:  # the caller judges each example alone to find the one that breaks
        return None
    return found if len(found) == len(outputs) else None
