"""`evaluate`: run a module over examples as one batch, score each output, keep the rows.

The examples run through `stream_batch` (limits, retries, checkpoint,
budgets, progress all apply); each output is scored as soon as it arrives,
while the others still run. The module's batch and an LLM-judge metric share
one `ResourceManager`, so the judge's calls count against the same limits.
With a store, each example is written when it finishes and again when it is
scored, so an interrupted evaluation keeps every completed example.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from plait.errors import ConfigError
from plait.evaluation.metrics import (
    Verdict,
    check_metric,
    describe,
    is_loss,
    judge_batch,
    judge_one,
)
from plait.evaluation.result import EvalResult, EvalRow
from plait.evaluation.store import RunStore, open_store
from plait.execution.batch import stream_batch
from plait.execution.checkpoint import stable_hash
from plait.execution.result import BatchItem
from plait.execution.run import open_manager, run_blocking, split_options
from plait.execution.settings import ExecutionSettings, effective_options

BATCH_OPTIONS = ("progress", "on_progress", "on_profile", "backend")


def example_pairs(examples: Iterable[Any], name: str = "examples") -> list[tuple[Any, Any]]:
    """``(input, target)`` pairs from pairs or ``{"input": ..., "target": ...}`` dicts."""
    if isinstance(examples, str | bytes) or not isinstance(examples, Iterable):
        raise ConfigError(
            f"{name} must be a list of (input, target) pairs; got {type(examples).__name__}"
        )
    pairs = []
    for i, item in enumerate(examples):
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


def parameter_values(module: Any) -> dict[str, Any]:
    """The module's parameters by dotted name, as they are now."""
    named = getattr(module, "named_parameters", None)
    return {name: param.value for name, param in named()} if callable(named) else {}


def run_error_text(error: BaseException | None) -> str:
    """Why a run produced no output, in one line: its first failed node (and how many more)."""
    failures = getattr(error, "failures", ())
    if failures:
        more = f" (and {len(failures) - 1} more failed nodes)" if len(failures) > 1 else ""
        return f"{failures[0]}{more}"
    lines = str(error).splitlines() if error is not None else []
    return f"{type(error).__name__}: {lines[0] if lines else 'unknown error'}"


def _failed_row(index: int, key: str, source: Any, target: Any, item: BatchItem) -> EvalRow:
    row = _row(index, key, source, target, item)
    row.score, row.error = 0.0, run_error_text(item.error)
    row.message = "the run failed, so there is no output to judge"
    return row


def _row(index: int, key: str, source: Any, target: Any, item: BatchItem) -> EvalRow:
    result = item.result
    return EvalRow(
        index=index,
        key=key,
        input=source,
        target=target,
        output=result.output if item.ok and result is not None else None,
        ok=item.ok,
        input_tokens=result.usage.input_tokens if result is not None else 0,
        output_tokens=result.usage.output_tokens if result is not None else 0,
        cost=result.cost if result is not None else 0.0,
        latency=result.makespan if result is not None else None,
        result=result,
    )


def _apply(row: EvalRow, verdict: Verdict) -> None:
    row.score, row.message, row.error = verdict.score, verdict.message, verdict.error


async def evaluate(
    module: Any,
    examples: Iterable[Any],
    metric: Callable[..., Any],
    *,
    name: str = "",
    info: dict[str, Any] | None = None,
    **options: Any,
) -> EvalResult:
    """Run ``module`` on every example's input and score each output with ``metric``.

    ``examples`` are ``(input, target)`` pairs (or ``{"input", "target"}``
    dicts); each input is passed to ``forward`` as its one argument, or is a
    `plait.Args` for several (``(Args(question, k=3), target)``).
    ``metric(output, target)`` returns a number, a bool, ``(score, message)``
    or a `Feedback`, or is a plait loss (see `plait.evaluation.metrics`).
    Other keywords are run options (``resources``, ``max_concurrent``,
    ``checkpoint``, ``max_cost``, ``store``...) and the batch's ``progress`` /
    ``on_progress`` / ``on_profile`` / ``backend`` (``backend="ray"`` runs the
    examples on a Ray cluster; the metric runs here).

        result = await plait.evaluate(pipeline, examples, exact_match, resources=resources)
        result.score, result.failures(), result.to_dataframe()
    """
    pairs = example_pairs(examples)
    check_metric(metric)
    batch_extra = {k: options.pop(k) for k in BATCH_OPTIONS if k in options}
    explicit, extra = split_options(dict(options))
    if extra:
        raise ConfigError(
            f"unknown evaluate option(s) {', '.join(sorted(extra))}; evaluate takes name=, info=, "
            f"the run options and {', '.join(BATCH_OPTIONS)}"
        )
    opts, owner = effective_options(explicit, module)
    store, owned = (None, False) if opts.store in (None, False) else open_store(opts.store)
    keys = [stable_hash(source) for source, _ in pairs]
    result = EvalResult(
        [],
        name=name or type(module).__name__,
        module=type(module).__name__,
        metric=describe(metric),
        params=parameter_values(module),
        status="running",
        started_at=time.time(),
        examples=len(pairs),
        info=dict(info or {}),
    )
    if store is not None:
        result.store = str(store.path)
        result.record_id = store.begin(
            "evaluation",
            name=result.name,
            module=result.module,
            metric=result.metric,
            examples=len(pairs),
            params=result.params,
            info=result.info,
        )
    try:
        async with open_manager(opts, owner) as manager:
            await _run(module, pairs, keys, metric, result, store, manager, options, batch_extra)
        result.status = "done"
    except Exception:
        result.status = "failed"
        raise
    except BaseException:  # cancelled, or interrupted
        result.status = "cancelled"
        raise
    finally:
        result.rows.sort(key=lambda r: r.index)
        result.finished_at = time.time()
        if store is not None and result.record_id is not None:
            if result.status == "failed" and not result.rows:
                store.delete(result.record_id)  # refused before it ran (config): nothing to keep
                result.record_id = None
            else:
                store.finish(result.record_id, result.status, result)
        if owned and store is not None:
            store.close()
    return result


async def _run(
    module: Any,
    pairs: list[tuple[Any, Any]],
    keys: list[str],
    metric: Any,
    result: EvalResult,
    store: RunStore | None,
    manager: Any,
    options: dict[str, Any],
    batch_extra: dict[str, Any],
) -> None:
    def save(row: EvalRow) -> None:
        if store is not None and result.record_id is not None:
            store.write_row(result.record_id, row)

    def save_score(row: EvalRow) -> None:
        if store is not None and result.record_id is not None:
            store.write_score(result.record_id, row)

    async def score(row: EvalRow, output: Any) -> None:
        _apply(row, await judge_one(metric, output, row.target))
        save_score(row)

    shared = {"resources": manager} if manager is not None else {}
    # Judges run under these settings: same manager, and never saved as runs of their own.
    judges = ExecutionSettings(**shared, store=False)
    batch_options = {**options, **shared, "store": False, **batch_extra}
    batch_options.setdefault("progress", "auto")
    loss = is_loss(metric)
    judged: list[tuple[EvalRow, Any]] = []
    tasks: list[asyncio.Task[None]] = []
    async with judges:
        try:
            stream = stream_batch(module, [source for source, _ in pairs], **batch_options)
            async with contextlib.aclosing(stream) as items:
                async for item in items:
                    source, target = pairs[item.index]
                    if not item.ok:
                        row = _failed_row(item.index, keys[item.index], source, target, item)
                    else:
                        row = _row(item.index, keys[item.index], source, target, item)
                    result.rows.append(row)
                    save(row)
                    if not item.ok:
                        continue
                    if loss:
                        judged.append((row, item.output))
                    else:
                        tasks.append(asyncio.ensure_future(score(row, item.output)))
            if loss and judged:
                found = await judge_batch(
                    metric, [o for _, o in judged], [r.target for r, _ in judged]
                )
                if found is None:  # the loss raised on the batch: find the examples that break it
                    tasks += [asyncio.ensure_future(score(row, out)) for row, out in judged]
                else:
                    for (row, _), verdict in zip(judged, found, strict=True):
                        _apply(row, verdict)
                        save_score(row)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()


def evaluate_sync(
    module: Any, examples: Iterable[Any], metric: Callable[..., Any], **options: Any
) -> EvalResult:
    """`evaluate`, blocking (also inside a running event loop)."""
    return run_blocking(evaluate(module, examples, metric, **options))
