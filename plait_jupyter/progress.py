"""`BatchProgressView`: a progress bar for batch runs (done, failed, retrying, tokens, cost, ETA)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import anywidget
import traitlets

from plait._checks import Checks
from plait.execution.batch import BatchProgress
from plait_jupyter.graph_view import STATIC
from plait_jupyter.throttle import Throttle


class BatchProgressView(anywidget.AnyWidget):
    """Shows a `BatchProgress`; updates are coalesced, the final one is always shown.

    view = BatchProgressView(); display(view)
    await run_batch(pipeline, texts, on_progress=view.update)
    """

    _esm = STATIC / "progress.js"
    _css = STATIC / "progress.css"

    progress = traitlets.Dict().tag(sync=True)

    def __init__(
        self, *, interval: float = 0.1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        checks = Checks("BatchProgressView")
        checks.number("interval", interval, low=0)
        checks.raise_any()
        super().__init__()
        self._latest: BatchProgress | None = None
        self._throttle = Throttle(self._flush, interval, clock)

    def update(self, progress: BatchProgress, *, final: bool = False) -> None:
        """Take the latest progress (the ``on_progress`` callback of `run_batch`).

        A finished batch (or ``final=True``) is shown at once.
        """
        self._latest = progress
        if final or progress.done + progress.failed >= progress.total:
            self._throttle.finish()
        else:
            self._throttle.poke()

    def _flush(self) -> None:
        if self._latest is not None:
            self.progress = dataclasses.asdict(self._latest)

    def __repr__(self) -> str:
        return f"BatchProgressView({self._latest or 'no progress yet'})"
