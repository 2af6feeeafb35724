"""`train`: the optimization loop, with validation, a cost budget and early stopping.

Every run inside (forward batches, LLM losses, the updater, validation)
happens under one `ExecutionSettings` whose event callback meters cost, so
the budget counts everything the loop spends. The budget is checked between
phases (before a batch, before the optimizer step, before validation): the
loop stops cleanly and never leaves a half-applied step, at the price of
overshooting by at most the phase in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from plait._checks import Checks
from plait._format import format_money
from plait.errors import ConfigError
from plait.evaluation.evaluate import evaluate
from plait.evaluation.store import open_store
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


class _Trainer:
    """One `train` call's state: the meter, the history rows and the best validated values."""

    def __init__(
        self,
        module: Module,
        val: list[tuple[Any, Any]],
        scorer: Loss,
        max_cost: float | None,
        on_step: Callable[[dict[str, Any]], None] | None,
        store: Any = False,
        name: str = "",
    ) -> None:
        self.module, self.val, self.scorer = module, val, scorer
        self.store, self.name = store, name  # where validations are saved (False: nowhere)
        self.max_cost, self.on_step = max_cost, on_step
        self.meter = _Meter()
        self.rows: list[dict[str, Any]] = []
        self.best_score: float | None = None
        self.best_step = 0
        self.best_state: dict[str, Any] = {}
        self.stale = 0

    def spent(self) -> bool:
        return self.max_cost is not None and self.meter.cost >= self.max_cost

    async def validate(self, step: int) -> float | None:
        if not self.val or self.spent():
            return None
        self.module.eval()
        result = await evaluate(
            self.module,
            self.val,
            self.scorer,
            store=self.store,
            name=self.name,
            info={"step": step},
            progress=False,
        )
        return result.score

    def record(self, step: int, epoch: int, train_score: Any, val_score: Any, updates: int) -> None:
        row = {
            "step": step,
            "epoch": epoch,
            "train_score": train_score,
            "val_score": val_score,
            "updates": updates,
            "cost": self.meter.cost,
            "tokens": self.meter.tokens,
        }
        self.rows.append(row)
        if self.on_step is not None:
            self.on_step(row)

    def keep_if_best(self, score: float | None, step: int) -> None:
        """Remember the module's values when ``score`` is the best so far (else count a stale step)."""
        if score is None:
            return
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best_step, self.stale = score, step, 0
            self.best_state = self.module.state_dict()
        else:
            self.stale += 1

    def restore_best(self) -> bool:
        """Load the values that earned the best score back; True if that changed the module.

        Ties and unscored last steps count too: the module ends holding the
        values that earned ``best_score``, the initial ones if nothing beat them.
        """
        if self.best_score is None or self.module.state_dict() == self.best_state:
            return False
        self.module.load_state_dict(self.best_state)
        return True


async def _train_step(
    trainer: _Trainer,
    batch: list[tuple[Any, Any]],
    loss: Loss,
    optimizer: Optimizer,
    strategy: BackwardStrategy | None,
) -> tuple[Any, int] | None:
    """Run, score and backward one batch, then step: (train score, updates), or None if spent."""
    module = trainer.module
    for param in module.parameters():
        param.zero_feedback()
    module.train()
    items = await run_batch(module, [x for x, _ in batch], progress=False)
    feedback = await loss(items, [t for _, t in batch])
    await feedback.backward(strategy)
    if trainer.spent():
        return None
    applied = await optimizer.step()
    return feedback.score, len(applied)


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
    store: Any = None,
    name: str = "",
) -> TrainHistory:
    """Optimize ``module`` on ``train_set`` (``(input, target)`` pairs), in order, batch by batch.

    Each step: run the batch in training mode, ``loss`` it, backward, one
    ``optimizer.step()``, then score ``val_set`` with ``metric`` (a `Loss`,
    or ``fn(output, target)`` as for `VerifierLoss`; default: ``loss``).
    Stops when ``max_cost`` is spent, when the validation score reaches
    ``target_score``, or after ``patience`` steps without improvement; with
    ``restore_best`` the module ends holding the best-scoring values seen
    (the initial ones when no step beat the baseline; a tie keeps the earlier).
    With ``store`` (a path or `RunStore`), every validation is saved as an
    evaluation named ``name`` (default "train <Module>") with ``info["step"]``,
    so ``RunStore(path).history(name)`` reloads the optimization step by step;
    nothing else the loop runs is stored.

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
    saved, owned = open_store(store) if store is not None else (False, False)
    run_name = name or f"train {type(module).__name__}"
    trainer = _Trainer(module, val, scorer, max_cost, on_step, saved, run_name)
    was_training = module.training
    batches = [pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)]
    async with ExecutionSettings(resources=resources, on_event=trainer.meter, store=False):
        try:
            baseline = await trainer.validate(0)
            trainer.record(0, 0, None, baseline, 0)
            trainer.keep_if_best(baseline, 0)
            trainer.best_state = module.state_dict()
            stop = "completed"
            schedule = [(epoch, batch) for epoch in range(1, epochs + 1) for batch in batches]
            for step, (epoch, batch) in enumerate(schedule, start=1):
                stepped = (
                    None
                    if trainer.spent()
                    else await _train_step(trainer, batch, loss, optimizer, strategy)
                )
                if stepped is None:
                    stop = "budget"
                    break
                score = await trainer.validate(step)
                trainer.record(step, epoch, stepped[0], score, stepped[1])
                trainer.keep_if_best(score, step)
                if score is not None and target_score is not None and score >= target_score:
                    stop = "target_reached"
                elif score is not None and patience is not None and trainer.stale >= patience:
                    stop = "no_improvement"
                if stop != "completed":
                    break
            restored = trainer.restore_best() if restore_best else False
        finally:
            for param in module.parameters():
                param.zero_feedback()
            module.train(was_training)
            if owned and not isinstance(saved, bool):
                saved.close()
    best_step = trainer.best_step if val else None
    return TrainHistory(
        trainer.rows, stop, best_step, trainer.best_score, trainer.meter.cost, restored
    )
