"""`Profile`: one run's (or one batch's) events with every view of them one call away."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from plait.execution.events import Event
from plait.execution.result import RunResult
from plait.graph import InferenceGraph
from plait.profiling import plots, trace_events
from plait.profiling.bubbles import BubbleReport, analyze
from plait.profiling.timeline import Timeline, build_timeline


class Profile:
    """Where a run's time went: its events, and every view of them computed on first use.

    Keeping a profile costs a reference to the event list; the `Timeline` is
    built the first time a view asks for it, and the `BubbleReport` is cached.

        profile = Profile.from_result(result)
        print(profile.bubbles().summary())
        profile.save_chrome_trace("run.json")              # open at ui.perfetto.dev
    """

    def __init__(
        self,
        events: Iterable[Event],
        *,
        endpoints: Mapping[str, int] | None = None,
        max_concurrent: int | None = None,
        graphs: Mapping[int | None, InferenceGraph] | None = None,
    ) -> None:
        """Profile an event stream (a run's or a whole batch's; see `build_timeline`)."""
        self.events = list(events)
        self.endpoints = dict(endpoints or {})
        self.max_concurrent = max_concurrent
        self.graphs = dict(graphs or {})
        self._timeline: Timeline | None = None
        self._report: BubbleReport | None = None

    @classmethod
    def from_result(cls, result: RunResult) -> Profile:
        """Profile one run from its `RunResult` (events, slot counts and graph)."""
        return cls(
            result.events,
            endpoints=result.endpoints,
            max_concurrent=result.max_concurrent,
            graphs={None: result.graph},
        )

    @property
    def timeline(self) -> Timeline:
        """The run's intervals (built from the events on first access)."""
        if self._timeline is None:
            self._timeline = build_timeline(
                self.events,
                endpoints=self.endpoints,
                max_concurrent=self.max_concurrent,
                graphs=self.graphs,
            )
        return self._timeline

    @property
    def makespan(self) -> float:
        return self.timeline.makespan

    def bubbles(self) -> BubbleReport:
        """Busy and idle time per endpoint and slot, idle by cause, critical path, largest bubbles."""
        if self._report is None:
            self._report = analyze(self.timeline)
        return self._report

    def chrome_trace(self) -> dict[str, Any]:
        """Chrome Trace Event JSON (a dict) for Perfetto and chrome://tracing."""
        return trace_events.chrome_trace(self.timeline)

    def save_chrome_trace(self, path: str | PathLike[str]) -> Path:
        """Write the Chrome trace as JSON to ``path``; returns the path."""
        return trace_events.save_chrome_trace(self.timeline, path)

    def plot_timeline(self, *, title: str | None = None) -> Any:
        """A plotly Gantt chart by endpoint slot (see `plots.plot_timeline`)."""
        return plots.plot_timeline(self.timeline, title=title)

    def plot_utilization(self) -> Any:
        """A plotly figure of busy, rate-limited and queued slots over time per endpoint."""
        return plots.plot_utilization(self.timeline, self.bubbles())

    def plot_bubbles(self) -> Any:
        """A plotly stacked bar of busy time and idle time by cause per endpoint."""
        return plots.plot_bubbles(self.bubbles())

    def to_dataframe(self) -> Any:
        """One row per interval: attempts, waits (upstream, queue, rate_limit, backoff) and local runs."""
        import pandas as pd  # optional extra: plait[jupyter]

        t = self.timeline
        rows = [
            {
                "kind": "attempt",
                "node": a.key,
                "item": a.item,
                "module_path": a.module_path,
                "endpoint": a.endpoint,
                "slot": a.slot,
                "attempt": a.attempt,
                "start": a.start,
                "end": a.end,
                "duration": a.end - a.start,
                "outcome": a.outcome,
                "input_tokens": a.input_tokens,
                "output_tokens": a.output_tokens,
                "cost": a.cost,
            }
            for a in t.attempts
        ]
        rows += [
            {
                "kind": w.kind,
                "node": w.key,
                "item": w.item,
                "module_path": w.module_path,
                "endpoint": w.endpoint,
                "slot": w.slot,
                "start": w.start,
                "end": w.end,
                "duration": w.end - w.start,
            }
            for w in t.waits
        ]
        rows += [
            {
                "kind": r.kind,
                "node": r.key,
                "item": r.item,
                "module_path": r.module_path,
                "start": r.start,
                "end": r.end,
                "duration": r.end - r.start,
                "outcome": r.outcome,
            }
            for r in t.local
        ]
        frame = pd.DataFrame(rows)
        return (
            frame.sort_values(["start", "end"], kind="stable").reset_index(drop=True)
            if rows
            else frame
        )

    def __repr__(self) -> str:
        if self._timeline is None:
            return f"Profile({len(self.events)} events, not yet analysed)"
        t = self._timeline
        slots = sum(t.endpoints.values())
        return (
            f"Profile(makespan={t.makespan:.3f}s, {len(t.attempts)} attempts, "
            f"{len(t.retries)} retries, {len(t.endpoints)} endpoint(s), {slots} slot(s))"
        )
