"""Evaluation: score a module over examples, compare two evaluations, keep them in a store.

    result = await plait.evaluate(pipeline, examples, metric, resources=resources, store="runs.db")
    result.score, result.failures(), result.to_dataframe()
    after = await plait.evaluate(pipeline, examples, metric, resources=resources, store="runs.db")
    result.compare(after)                          # matched by input: deltas, word diffs
    plait.RunStore("runs.db").load()               # in another process, after a restart

`plait_jupyter.EvalView` shows an `EvalResult` or a `Comparison` in a notebook.
"""

from plait.evaluation.compare import Comparison, ComparisonRow
from plait.evaluation.evaluate import evaluate, evaluate_sync
from plait.evaluation.result import EvalResult, EvalRow
from plait.evaluation.runs import recorder
from plait.evaluation.store import SCHEMA_VERSION, RunStore
from plait.execution.run import install_store

install_store(recorder)

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
