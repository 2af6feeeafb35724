"""Saving plain runs and batches (``store=`` on `execute`, `run`, `run_batch`, `stream_batch`).

A run is a record of kind "run" with one row, a batch a record of kind
"batch" with one row per item, written as each item finishes. Their rows
have no score; everything else is as for an evaluation, so `RunStore.load`
returns them as `EvalResult`s too.
"""

from __future__ import annotations

from typing import Any

from plait.evaluation.evaluate import parameter_values, run_error_text
from plait.evaluation.result import EvalRow
from plait.evaluation.store import RunStore, open_store
from plait.execution.checkpoint import stable_hash
from plait.execution.result import BatchItem


class RunRecorder:
    """Writes the items of one run or batch into a `RunStore` as they finish."""

    def __init__(
        self, store: RunStore, kind: str, module: Any, count: int, *, owned: bool = False
    ) -> None:
        self.store = store
        self.owned = owned  # opened from a path for this run: closed when it finishes
        self.rows: list[EvalRow] = []
        self.record_id = store.begin(
            kind,
            name=type(module).__name__,
            module=type(module).__name__,
            examples=count,
            params=parameter_values(module),
        )

    def add(self, item: BatchItem) -> None:
        result = item.result
        error = None if item.ok else run_error_text(item.error)
        row = EvalRow(
            index=item.index,
            key=stable_hash(item.input),
            input=item.input,
            target=None,
            output=result.output if item.ok and result is not None else None,
            error=error,
            ok=item.ok,
            input_tokens=result.usage.input_tokens if result is not None else 0,
            output_tokens=result.usage.output_tokens if result is not None else 0,
            cost=result.cost if result is not None else 0.0,
            latency=result.makespan if result is not None else None,
            result=result,
        )
        self.rows.append(row)
        self.store.write_row(self.record_id, row)

    def finish(self, status: str) -> None:
        tokens = sum(r.tokens for r in self.rows)
        cost = sum(r.cost for r in self.rows)
        self.store.finish(self.record_id, status, summary=(None, tokens, cost))
        if self.owned:
            self.store.close()


def recorder(store: Any, kind: str, module: Any, count: int) -> RunRecorder:
    opened, owned = open_store(store)
    return RunRecorder(opened, kind, module, count, owned=owned)
