"""`train`: the optimization loop, with validation, a cost budget and early stopping.

Every run inside (forward batches, LLM losses, the updater, validation)
happens under one `ExecutionSettings` whose event callback meters cost, so
the budget counts everything the loop spends. The budget is checked between
phases (before a batch, before the optimizer step, before validation): the
loop stops cleanly and never leaves a half-applied step, at the price of
overshooting by at most the phase in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from plait._checks import Checks
from plait._format import format_money
from plait.errors import ConfigError
from plait.execution.batch import run_batch
from plait.execution.settings import ExecutionSettings, as_resources
from plait.module import Module
from plait.optimization.backward import BackwardStrategy
from plait.optimization.losses import Loss, VerifierLoss
from plait.optimization.optimizer import Optimizer

STOP_REASONS = ("completed", "budget", "target_reached", "no_improvement")


@dataclass
class TrainHistory:
    """What `train` did: one row per step (step 0 is the baseline), why it stopped, the best step.

    Each row has ``step``, ``epoch``, ``train_score`` (mean feedback score of
    the step's batch), ``val_score``, ``updates`` (parameters changed),
    ``cost`` and ``tokens`` (cumulative). ``stop_reason`` is one of
    `STOP_REASONS`; ``restored`` says whether the best step's values were
    loaded back at the end.
    """

    rows: list[dict[str, Any]]
    stop_reason: str
    best_step: int | None
    best_score: float | None
    cost: float
    restored: bool = False

    @property
    def val_scores(self) -> list[float | None]:
        return [row["val_score"] for row in self.rows]

    def to_dataframe(self) -> Any:
        """The rows as a pandas DataFrame indexed by step (needs the ``jupyter`` extra)."""
        import pandas as pd  # optional extra: plait[jupyter]

        return pd.DataFrame(self.rows).set_index("step")

    def __repr__(self) -> str:
        scores = " -> ".join("-" if s is None else f"{s:.2f}" for s in self.val_scores)
        return (
            f"TrainHistory(steps={len(self.rows) - 1}, val: {scores}, stop={self.stop_reason!r}, "
            f"best_step={self.best_step}{', restored' if self.restored else ''}, "
            f"cost={format_money(self.cost)})"
        )


class _Meter:
    """Sums cost and tokens from the usage events of every run it is attached to."""

    def __init__(self) -> None:
        self.cost = 0.0
        self.tokens = 0

    def __call__(self, event: Any) -> None:
        if event.type == "usage":
            self.cost += event.cost
            self.tokens += event.usage.total_tokens


def _pairs(data: Iterable[Any], name: str) -> list[tuple[Any, Any]]:
    pairs = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and "input" in item:
            pairs.append((item["input"], item.get("target")))
        elif isinstance(item, tuple | list) and len(item) == 2:
            pairs.append((item[0], item[1]))
        else:
            raise ConfigError(
                f"{name}[{i}] is {item!r:.60}; each example must be an (input, target) pair "
                "or a {'input': ..., 'target': ...} dict"
            )
    return pairs


def _mean(scores: Sequence[float | None]) -> float | None:
    known = [s for s in scores if s is not None]
    return sum(known) / len(known) if known else None


async def train(
    module: Module,
    train_set: Iterable[Any],
    *,
    loss: Loss,
    optimizer: Optimizer,
    val_set: Iterable[Any] | None = None,
    metric: Loss | Callable[[Any, Any], Any] | None = None,
    batch_size: int = 8,
    epochs: int = 1,
    max_cost: float | None = None,
    patience: int | None = None,
    target_score: float | None = None,
    restore_best: bool = True,
    resources: Any = None,
    strategy: BackwardStrategy | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> TrainHistory:
    """Optimize ``module`` on ``train_set`` (``(input, target)`` pairs), in order, batch by batch.

    Each step: run the batch in training mode, ``loss`` it, backward, one
    ``optimizer.step()``, then score ``val_set`` with ``metric`` (a `Loss`,
    or ``fn(output, target)`` as for `VerifierLoss`; default: ``loss``).
    Stops when ``max_cost`` is spent, when the validation score reaches
    ``target_score``, or after ``patience`` steps without improvement; with
    ``restore_best`` the module ends holding the best-scoring values seen
    (the initial ones when no step beat the baseline; a tie keeps the earlier).

        history = await train(pipeline, data, loss=loss, optimizer=opt, val_set=val)
        history.to_dataframe()
    """
    pairs = _pairs(train_set, "train_set")
    val = _pairs(val_set, "val_set") if val_set is not None else []
    checks = Checks("train()")
    checks.instance("module", module, Module, "a plait Module")
    checks.instance("loss", loss, Loss, "a Loss (e.g. VerifierLoss(fn), LLMJudge(...))")
    checks.instance("optimizer", optimizer, Optimizer, "an Optimizer")
    checks.number("batch_size", batch_size, low=1, integer=True)
    checks.number("epochs", epochs, low=1, integer=True)
    checks.number("patience", patience, low=1, integer=True, optional=True)
    checks.number("max_cost", max_cost, low=0, optional=True)
    checks.number("target_score", target_score, low=0, high=1, optional=True)
    checks.flag("restore_best", restore_best)
    checks.function("on_step", on_step)
    checks.check(
        metric is None or isinstance(metric, Loss) or callable(metric),
        "metric",
        metric,
        "a Loss, a function(output, target), or None",
    )
    checks.check(
        strategy is None or callable(strategy),
        "strategy",
        strategy,
        "a BackwardStrategy (an async callable), or None",
    )
    checks.raise_any()
    resources = as_resources(resources)
    scorer = (
        metric if isinstance(metric, Loss) else loss if metric is None else VerifierLoss(metric)
    )
    meter = _Meter()
    was_training = module.training
    rows: list[dict[str, Any]] = []

    def spent() -> bool:
        return max_cost is not None and meter.cost >= max_cost

    async def validate() -> float | None:
        if not val or spent():
            return None
        module.eval()
        items = await run_batch(module, [x for x, _ in val], progress=False)
        feedback = await scorer(items, [t for _, t in val])
        return _mean([f.score for f in feedback])

    def record(step: int, epoch: int, train_score: Any, val_score: Any, updates: int) -> None:
        row = {
            "step": step,
            "epoch": epoch,
            "train_score": train_score,
            "val_score": val_score,
            "updates": updates,
            "cost": meter.cost,
            "tokens": meter.tokens,
        }
        rows.append(row)
        if on_step is not None:
            on_step(row)

    async with ExecutionSettings(resources=resources, on_event=meter):
        try:
            baseline = await validate()
            record(0, 0, None, baseline, 0)
            best_score, best_step, best_state = baseline, 0, module.state_dict()
            stop, step, stale = "completed", 0, 0
            for epoch in range(1, epochs + 1):
                for start in range(0, len(pairs), batch_size):
                    if spent():
                        stop = "budget"
                        break
                    batch = pairs[start : start + batch_size]
                    for param in module.parameters():
                        param.zero_feedback()
                    module.train()
                    items = await run_batch(module, [x for x, _ in batch], progress=False)
                    feedback = await loss(items, [t for _, t in batch])
                    await feedback.backward(strategy)
                    if spent():
                        stop = "budget"
                        break
                    applied = await optimizer.step()
                    step += 1
                    score = await validate()
                    record(step, epoch, feedback.score, score, len(applied))
                    if score is None:
                        continue
                    if best_score is None or score > best_score:
                        best_score, best_step, best_state, stale = (
                            score,
                            step,
                            module.state_dict(),
                            0,
                        )
                    else:
                        stale += 1
                    if target_score is not None and score >= target_score:
                        stop = "target_reached"
                    elif patience is not None and stale >= patience:
                        stop = "no_improvement"
                    if stop != "completed":
                        break
                if stop != "completed":
                    break
            # Ties and unscored last steps count too: the module must end holding the
            # values that earned best_score, which are the initial ones if nothing beat them.
            restored = False
            if restore_best and best_score is not None and module.state_dict() != best_state:
                module.load_state_dict(best_state)
                restored = True
        finally:
            for param in module.parameters():
                param.zero_feedback()
            module.train(was_training)
    return TrainHistory(rows, stop, best_step if val else None, best_score, meter.cost, restored)
