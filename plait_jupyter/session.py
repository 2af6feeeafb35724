"""`CellSession`: what one ``%%plait`` cell shows — a live view per run, then a summary.

The cell's `ExecutionSettings` passes every event of every run to
`CellSession.on_event`. Events carry no run id, so the session routes them
with a context variable set when a run starts: the tasks of that run are
created afterwards and inherit it, and runs started concurrently (``gather``)
each run in their own task and context.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from IPython.display import HTML, display

from plait._format import format_money
from plait.execution.events import Event
from plait.execution.result import RunResult
from plait_jupyter.graph_view import GraphView
from plait_jupyter.live import RunState
from plait_jupyter.progress import BatchProgressView
from plait_jupyter.reprs import badge, box, esc, output_preview, state_badge, table

_CURRENT: ContextVar[tuple[CellSession, Callable[[Event], None]] | None] = ContextVar(
    "plait_jupyter_current_run", default=None
)


class CellSession:
    """One ``%%plait`` cell: routes each run's events to its view; summarizes at the end.

    ``quiet`` shows no live views (only a one-line summary per run); ``profile``
    adds the timeline and bubble plots of each single run; ``review`` is reserved
    for training cells.
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        profile: bool = False,
        review: bool = False,
        show: Callable[[Any], Any] | None = None,
    ) -> None:
        self.quiet = quiet
        self.profile = profile
        self.review = review
        self.show = show if show is not None else _show_updatable
        self.runs: list[RunState] = []
        # Display handles of the live views: at the end each is re-published, so the text a
        # saved notebook keeps for it describes the finished run, not the moment it was shown
        # (except a graph recorded while it ran: a re-render would lay it out afresh).
        self._handles: list[tuple[Any, Any]] = []
        self.views: list[GraphView] = []
        self.progress_views: list[BatchProgressView] = []
        self._handlers: list[Callable[[Event], None]] = []

    def on_event(self, event: Event) -> None:
        """The cell's ``on_event`` callback."""
        if event.type == "run_started":
            handler = self._start(event)
            _CURRENT.set((self, handler))
            return
        current = _CURRENT.get()
        if current is not None and current[0] is self:
            current[1](event)
        elif self.runs:  # emitted outside the run's context: the latest run is the best guess
            self._handlers[-1](event)

    def _start(self, event: Any) -> Callable[[Event], None]:
        batch = event.run_id == "batch"
        if self.quiet:
            run = RunState(event.graphs, event.records, batch=batch, run_id=event.run_id)
            handler: Callable[[Event], None] = run.apply
        else:
            view = GraphView()
            view.on_event(event)
            assert view.run is not None  # attached by the run_started event
            run = view.run
            handler = view.on_event
            self.views.append(view)
            if batch:
                progress = BatchProgressView()
                self.progress_views.append(progress)
                self.show(progress)
                handler = _with_progress(view.on_event, run, progress)
            self._handles.append((self.show(view), view))
        self.runs.append(run)
        self._handlers.append(handler)
        return handler

    @property
    def results(self) -> list[RunResult]:
        """The `RunResult` of every finished single run of the cell, in start order."""
        return [run.result for run in self.runs if run.result is not None]

    def finish(self) -> None:
        """Show the summary (and, with ``profile``, the plots) once the cell's code is done."""
        if not self.runs:
            return
        for handle, view in self._handles:
            if handle is not None and not _grew(view):
                handle.update(view)
        self.show(HTML(summary_html(self.runs, compact=self.quiet)))
        if self.profile:
            self._show_profiles()

    def _show_profiles(self) -> None:
        for result in self.results:
            self.show(result.plot_timeline())
            self.show(result.plot_bubbles())


def _grew(view: Any) -> bool:
    """Whether ``view`` drew a graph recorded while it ran: re-rendering would re-lay it out."""
    run = getattr(view, "run", None)
    return run is not None and (run.recorded or bool(run.graph_data.get("recorded")))


def _show_updatable(obj: Any) -> Any:
    """Display ``obj`` and return its handle (for `DisplayHandle.update`)."""
    return display(obj, display_id=True)


def _with_progress(
    handler: Callable[[Event], None], run: RunState, progress: BatchProgressView
) -> Callable[[Event], None]:
    def both(event: Event) -> None:
        handler(event)
        progress.update(run.progress(), final=event.type == "run_finished")

    return both


def summary_html(runs: list[RunState], *, compact: bool = False) -> str:
    """One row per run (status, nodes, tokens, cost, time, output) and the failures."""
    rows = []
    failures: list[str] = []
    for run in runs:
        counts = run.counts()
        done = counts.get("done", 0) + counts.get("cached", 0)
        failed = counts.get("failed", 0)
        nodes = f"{done}/{len(run.states)} done" + (f", {failed} failed" if failed else "")
        if run.batch:
            nodes += f" · items {run.items_done} ok, {run.items_failed} failed of {len(run.graphs)}"
        output = ""
        if run.result is not None:
            output = output_preview(run.result.output)
            failures.extend(f"{run.run_id}: {failure}" for failure in run.result.failures)
        rows.append(
            [
                esc(run.graph_data["title"]),
                state_badge(run.status),
                esc(nodes),
                esc(f"{run.tokens:,}"),
                esc(format_money(run.cost)),
                esc(f"{run.elapsed:.2f} s"),
                "" if compact else output,
            ]
        )
    header = ["run", "status", "nodes", "tokens", "cost", "time", "" if compact else "output"]
    total_tokens = sum(run.tokens for run in runs)
    total_cost = sum(run.cost for run in runs)
    title = (
        f"{badge('plait')} {len(runs)} run{'s' if len(runs) != 1 else ''} · "
        f"{total_tokens:,} tokens · {format_money(total_cost)}"
    )
    errors = "".join(f"<li>{esc(f)}</li>" for f in failures)
    return box(
        title, table(header, rows), f'<ul style="color:#b91c1c">{errors}</ul>' if errors else ""
    )
