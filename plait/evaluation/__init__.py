"""Evaluation: score a module over examples, compare two evaluations, keep them in a store.

    result = await plait.evaluate(pipeline, examples, metric, resources=resources, store="runs.db")
    result.score, result.failures(), result.to_dataframe()
    after = await plait.evaluate(pipeline, examples, metric, resources=resources, store="runs.db")
    result.compare(after)                          # matched by input: deltas, word diffs
    plait.RunStore("runs.db").load()               # in another process, after a restart

`plait_jupyter.EvalView` shows an `EvalResult` or a `Comparison` in a notebook.
"""

from plait.evaluation.evaluate import evaluate, evaluate_sync
from plait.evaluation.result import Comparison, ComparisonRow, EvalResult, EvalRow
from plait.evaluation.store import SCHEMA_VERSION, RunStore

__all__ = [
    "SCHEMA_VERSION",
    "Comparison",
    "ComparisonRow",
    "EvalResult",
    "EvalRow",
    "RunStore",
    "evaluate",
    "evaluate_sync",
]
